"""Generated files: ``docs/settings.md`` from the settings table, ``server/schema.sql``
from the migrations.

Run ``python -m passerelle.server.docs`` (``make docs``) after changing a
setting or adding a migration; tests fail while the files and the code disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from passerelle.server.settings import SETTINGS, format_value


def settings_markdown() -> str:
    lines = [
        "# Settings",
        "",
        "<!-- Generated from server/settings.py by `make docs`; do not edit by hand. -->",
        "",
        "Every setting can be given, later sources winning, as:",
        "",
        "1. its default (below);",
        "2. a line in `HOME/passerelle.toml`, e.g. `port = 8080`;",
        "3. an environment variable `PASSERELLE_<NAME>`, e.g. `PASSERELLE_PORT=8080`",
        "   (lists are comma-separated, booleans `true`/`false`);",
        "4. a command-line flag where the command has one (`passerelle serve --port 8080`).",
        "",
        "The data home itself is chosen by `--home DIR`, else `PASSERELLE_HOME`, else",
        "`~/.passerelle`. `passerelle config show` prints every effective value and its source;",
        "an unknown or mistyped setting stops the command with a message naming it and its source.",
        "",
        "| name | type | default | environment | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        kind = {int: "integer", bool: "boolean", list: "list", str: "text"}[s.type]
        extra = []
        if s.choices:
            extra.append("one of " + ", ".join(f"`{c}`" for c in s.choices))
        if s.minimum is not None:
            extra.append(f"{s.minimum} to {s.maximum}")
        help_text = s.help + (f" ({'; '.join(extra)})" if extra else "")
        lines.append(f"| `{s.name}` | {kind} | `{format_value(s.default)}` | `{s.env_var}` | {help_text} |")
    return "\n".join(lines) + "\n"


def schema_sql() -> str:
    """The schema the migrations produce on an empty database, in a stable order."""
    import tempfile

    from passerelle.server import db as dbmod

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "schema.db"
        dbmod.prepare(path)
        conn = dbmod.connect(path)
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name"
        ).fetchall()
        conn.close()
    header = "-- Generated from the migrations by `make docs`; do not edit by hand.\n"
    return header + "".join(f"\n{sql.strip()};\n" for _, _, sql in rows)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    (root / "docs" / "settings.md").write_text(settings_markdown(), encoding="utf-8")
    (root / "server" / "schema.sql").write_text(schema_sql(), encoding="utf-8")
    print("wrote docs/settings.md and server/schema.sql")
