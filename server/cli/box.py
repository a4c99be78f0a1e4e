"""Commands that run and keep the box: ``serve``, ``config``, ``migrate``, ``check``, ``backup``, ``restore``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from passerelle.server import db as dbmod
from passerelle.server.cli.base import Env, cli, pass_env
from passerelle.server.errors import (
    NotFound,
)
from passerelle.server.settings import (
    SETTINGS,
    format_value,
)

# --- serve -------------------------------------------------------------------------

def _setting_option(name: str, *decls: str, **kw):
    setting = next(s for s in SETTINGS if s.name == name)
    return click.option(*decls, name, default=None, type=setting.type,
                        help=f"{setting.help} [setting {name}; default {format_value(setting.default)}]",
                        **kw)


@cli.command()
@_setting_option("host", "--host", metavar="ADDR")
@_setting_option("port", "--port", metavar="PORT")
@_setting_option("threads", "--threads", metavar="N")
@_setting_option("database_url", "--database", metavar="URL")
@pass_env
def serve(env: Env, host: str | None, port: int | None, threads: int | None,
          database_url: str | None) -> None:
    """Serve the kiosk and the API to the tablets on the LAN.

    Checks the database and applies migrations first; stops cleanly on
    SIGTERM or Ctrl-C. A hub may keep its records on PostgreSQL (--database).

    Example: passerelle serve --host 0.0.0.0 --port 8080 --threads 8
    """
    from passerelle.server.app import create_app
    from passerelle.server.web.serve import run

    settings = env.settings({"host": host, "port": port, "threads": threads,
                             "database_url": database_url})
    app = create_app(settings)
    run(app, settings)


# --- config ------------------------------------------------------------------------

@cli.group()
def config() -> None:
    """Show the effective settings and where each came from.

    Example: passerelle config show
    """


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def config_show(env: Env, as_json: bool) -> None:
    """Print every effective setting, its value and its source.

    Sources, later ones winning: default, HOME/passerelle.toml, PASSERELLE_* environment
    variables, command-line flags.

    Example: PASSERELLE_PORT=9000 passerelle config show
    """
    rows = env.settings().rows()
    if as_json:
        click.echo(json.dumps({n: {"value": v, "source": s} for n, v, s in rows}, indent=2))
        return
    width = max(len(n) for n, _, _ in rows)
    vwidth = max(len(format_value(v)) for _, v, _ in rows)
    for name, value, source in rows:
        click.echo(f"{name:<{width}}  {format_value(value):<{vwidth}}  {source}")


# --- database ----------------------------------------------------------------------

@cli.command()
@pass_env
def migrate(env: Env) -> None:
    """Bring the database schema up to date.

    Creates the data home if needed.

    `serve` does this on every start; run it alone after an upgrade to see the result.

    Example: passerelle --home /var/lib/passerelle migrate
    """
    info = env.prepare()
    click.echo(f"database {env.home.db_path} is at schema {info['schema_version']} "
               f"(device {info['device_id']})")


@cli.command()
@click.option("--full", is_flag=True, help="Run SQLite's full integrity_check (slower) instead of quick_check.")
@pass_env
def check(env: Env, full: bool) -> None:
    """Check the database's integrity and report problems.

    Example: passerelle check --full
    """
    path = env.home.db_path
    if not path.exists():
        raise NotFound(f"there is no database at {path}; start the server or run `passerelle migrate`")
    db = dbmod.connect(path)
    try:
        found = dbmod.problems(db, full=full)
    finally:
        db.close()
    if found:
        from passerelle.server.errors import DatabaseProblem
        raise DatabaseProblem(f"{path} is damaged ({found[0]}); {dbmod.recovery_hint(path)}")
    click.echo(f"{path}: ok")


@cli.command()
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@pass_env
def backup(env: Env, dest: Path | None) -> None:
    """Snapshot the database, safely while serving.

    DEST is a file or a folder; by default HOME/backups/passerelle-<time>.db.
    Content blobs are not copied: packs can be imported again. A hub on
    PostgreSQL is dumped with pg_dump (restore it with pg_restore).

    Example: passerelle backup /media/usb/box-backup.db
    """
    settings = env.settings()
    if settings["database_url"]:
        written = dbmod.backup_postgres(settings["database_url"], dest or env.home.ensure().backups)
        click.echo(f"backup written to {written} (pg_dump; restore with pg_restore)")
        return
    written = dbmod.backup(env.home.db_path, dest or env.home.ensure().backups)
    click.echo(f"backup written to {written}")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_env
def restore(env: Env, file: Path, yes: bool) -> None:
    """Put a backup back in place of the database.

    A safety copy of the current database is kept.

    Checks the backup first; refuses damaged or foreign files. The box takes a
    new device id so that sync never confuses old and new operations.

    Example: passerelle restore ~/.passerelle/backups/passerelle-20261122-101500-000000.db --yes
    """
    if env.settings()["database_url"]:
        raise click.UsageError("this hub keeps its records on PostgreSQL: restore its pg_dump "
                               "with pg_restore (see docs/deployment.md)")
    home = env.home.ensure()
    dbmod.validate_backup(file)
    if not yes and not click.confirm(f"Replace {home.db_path} with {file}?", default=False):
        raise click.Abort()
    result = dbmod.restore(home.db_path, file, home.backups)
    click.echo(f"restored {file}")
    if result["safety_copy"]:
        click.echo(f"previous database kept as {result['safety_copy']}")


