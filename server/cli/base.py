"""The ``passerelle`` command: one click group, named exit codes, one line per failure.

Every command reaches the box through :class:`Env` (``ctx.obj``): the data home,
the resolved settings and a database opened on demand. Failures leave through
:func:`main`: a :class:`~.errors.PasserelleError` (or a library's exception,
translated by :func:`translate`) prints one line on stderr and exits with its
named code; the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from passerelle.server import __version__
from passerelle.server import db as dbmod
from passerelle.server.errors import (
    ConfigError,
    ExitStatus,
    InvalidInput,
    NotFound,
    PasserelleError,
)
from passerelle.server.home import Home
from passerelle.server.settings import (
    SETTINGS,
    Settings,
    SettingsError,
    format_value,
    resolve,
    resolve_home,
)

# How `passerelle --help` groups its commands. Groups that later work fills in
# (`content`, `pack`, `users`, `search`, `index`, `sync`) take their place here.
SECTIONS = (
    ("Run the box", ("serve", "config", "migrate", "check")),
    ("Keep data safe", ("backup", "restore")),
    ("Content", ("content", "pack")),
    ("People", ("users", "report")),
    ("Search", ("search", "index")),
    ("Sync", ("sync",)),
)


class Env:
    """What a command needs from the box, resolved once per invocation."""

    def __init__(self, home_flag: str | None, debug: bool):
        self.debug = debug
        self.home_path, self.home_source = resolve_home(home_flag)
        self._settings: Settings | None = None

    @property
    def home(self) -> Home:
        return Home(self.home_path)

    def settings(self, flags: dict[str, Any] | None = None) -> Settings:
        if flags or self._settings is None:
            try:
                self._settings = resolve(self.home_path, self.home_source, flags=flags)
            except SettingsError as exc:
                raise ConfigError(str(exc)) from None
        return self._settings

    def prepare(self) -> dict:
        """Make the home, check the database and apply migrations (what `serve` does on start)."""
        settings = self.settings()
        self.home.ensure()
        return dbmod.prepare(self.home.db_path, settings["db_busy_timeout_ms"])

    def open_db(self):
        """A migrated database connection for one command; the caller closes it."""
        self.prepare()
        return dbmod.connect(self.home.db_path, self.settings()["db_busy_timeout_ms"])

    @contextmanager
    def db(self):
        """``with env.db() as db:`` — a migrated connection, closed whatever happens."""
        db = self.open_db()
        try:
            yield db
        finally:
            db.close()


pass_env = click.make_pass_decorator(Env)


class SectionedGroup(click.Group):
    """Lists commands under the headings of ``SECTIONS``, in that order."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        placed: set[str] = set()
        for title, names in SECTIONS:
            rows = []
            for name in names:
                cmd = self.get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=70)))
                    placed.add(name)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [(n, self.get_command(ctx, n).get_short_help_str(70))
                for n in self.list_commands(ctx) if n not in placed]
        if rest:
            with formatter.section("Other commands"):
                formatter.write_dl(rest)


EXIT_HELP = "Exit codes: " + ", ".join(f"{s.value} {s.name.lower()}" for s in ExitStatus) + "."


@click.group(cls=SectionedGroup, epilog=EXIT_HELP)
@click.option("--home", metavar="DIR", help="Data directory [env PASSERELLE_HOME; default ~/.passerelle].")
@click.option("--debug", is_flag=True, envvar="PASSERELLE_DEBUG",
              help="Show the full traceback when a command fails.")
@click.version_option(__version__, prog_name="passerelle")
@click.pass_context
def cli(ctx: click.Context, home: str | None, debug: bool) -> None:
    """Passerelle: an offline learning content server for community spaces.

    All state lives under one data directory (--home). Run `passerelle COMMAND --help`
    for the details and an example of each command.

    Example: passerelle --home /var/lib/passerelle serve --port 8080
    """
    ctx.obj = Env(home, debug)


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
@pass_env
def serve(env: Env, host: str | None, port: int | None, threads: int | None) -> None:
    """Serve the kiosk and the API to the tablets on the LAN.

    Checks the database and applies migrations first; stops cleanly on
    SIGTERM or Ctrl-C.

    Example: passerelle serve --host 0.0.0.0 --port 8080 --threads 8
    """
    from passerelle.server.app import create_app
    from passerelle.server.web.serve import run

    settings = env.settings({"host": host, "port": port, "threads": threads})
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
    Content blobs are not copied: packs can be imported again.

    Example: passerelle backup /media/usb/box-backup.db
    """
    env.settings()
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
    env.settings()
    home = env.home.ensure()
    dbmod.validate_backup(file)
    if not yes and not click.confirm(f"Replace {home.db_path} with {file}?", default=False):
        raise click.Abort()
    result = dbmod.restore(home.db_path, file, home.backups)
    click.echo(f"restored {file}")
    if result["safety_copy"]:
        click.echo(f"previous database kept as {result['safety_copy']}")


# --- entry point -------------------------------------------------------------------

def translate(exc: BaseException) -> PasserelleError | None:
    """Library exceptions, made into the server's errors at the CLI edge."""
    if isinstance(exc, PasserelleError):
        return exc
    if isinstance(exc, SettingsError):
        return ConfigError(str(exc))
    for translator in _TRANSLATORS:
        found = translator(exc)
        if found is not None:
            return found
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{exc.filename}: no such file or folder")
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return InvalidInput(f"{exc.filename}: {exc.strerror}")
    return None


# Later subsystems register how their library's exceptions map onto PasserelleError.
_TRANSLATORS: list = []


def main(argv: list[str] | None = None) -> int:
    """Console entry point: runs the group, turns failures into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("PASSERELLE_DEBUG", "") not in ("", "0")
    try:
        cli.main(args=args, prog_name="passerelle", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("passerelle: aborted", err=True)
        return ExitStatus.INTERRUPTED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return ExitStatus.USAGE if isinstance(exc, click.UsageError) else ExitStatus.ERROR
    except KeyboardInterrupt:
        click.echo("passerelle: interrupted", err=True)
        return ExitStatus.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place failures become exit codes
        known = translate(exc)
        if debug:
            traceback.print_exc()
        if known is None:
            click.echo(f"passerelle: unexpected error: {type(exc).__name__}: {exc}"
                       + ("" if debug else " (run with --debug for the traceback)"), err=True)
            return ExitStatus.ERROR
        click.echo(f"passerelle: error: {known.message}", err=True)
        return known.exit_code
    return ExitStatus.SUCCESS


# Command groups of the subsystems, each with the translator of its library's exceptions.
from passerelle.server.cli.content import content, pack, translate_content_error  # noqa: E402
from passerelle.server.cli.reports import report  # noqa: E402
from passerelle.server.cli.search import index, search  # noqa: E402
from passerelle.server.cli.sync import sync  # noqa: E402
from passerelle.server.cli.users import users  # noqa: E402

cli.add_command(content)
cli.add_command(pack)
cli.add_command(users)
cli.add_command(search)
cli.add_command(index)
cli.add_command(sync)
cli.add_command(report)
_TRANSLATORS.append(translate_content_error)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
