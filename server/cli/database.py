"""`passerelle db`: where a hub keeps its records."""

from __future__ import annotations

import click
from passerelle.server import db as dbmod
from passerelle.server.cli.base import Env, pass_env
from passerelle.server.dialect import is_postgres_url


@click.group("db")
def database() -> None:
    """Where a hub keeps its records (SQLite in the home, or PostgreSQL).

    Example: passerelle db move-to-postgres postgresql://passerelle@localhost/hub
    """


@database.command("move-to-postgres")
@click.argument("url")
@pass_env
def move_to_postgres(env: Env, url: str) -> None:
    """Move this hub's records from SQLite into an empty PostgreSQL database.

    The hub keeps its device id, so paired boxes go on syncing with it. Stop
    the server first; afterwards the home's passerelle.toml points at URL
    (the database_url setting), and the SQLite file is left as it was.

    Example: passerelle db move-to-postgres postgresql://passerelle@localhost/hub
    """
    if not is_postgres_url(url):
        raise click.BadParameter("a postgresql://user@host/name URL", param_hint="URL")
    settings = env.settings()
    if settings["database_url"]:
        raise click.UsageError(f"this home already uses {settings.sources['database_url']}'s "
                               "database_url; nothing to move")
    home = env.home.ensure()
    result = dbmod.move_to_postgres(home.db_path, url)
    toml = home.root / "passerelle.toml"
    text = toml.read_text(encoding="utf-8") if toml.exists() else ""
    # Top of the file: a TOML key after a [table] header would belong to that table.
    toml.write_text(f"database_url = {_toml_string(url)}\n" + text, encoding="utf-8")
    rows = sum(result["tables"].values())
    click.echo(f"moved {rows} rows in {len(result['tables'])} tables; device id "
               f"{result['device_id']} kept; {toml} now sets database_url")


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
