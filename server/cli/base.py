"""The ``passerelle`` command: one click group, named exit codes, one line per failure.

Every command reaches the box through :class:`Env` (``ctx.obj``): the data home,
the resolved settings and a database opened on demand. Failures leave through
:func:`main`: a :class:`~.errors.PasserelleError` (or a library's exception,
translated by :func:`translate`) prints one line on stderr and exits with its
named code; the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager
from typing import Any

import click
from passerelle.server import __version__, errors
from passerelle.server import db as dbmod
from passerelle.server.errors import (
    ConfigError,
    ExitStatus,
    InvalidInput,
    NotFound,
    PasserelleError,
)
from passerelle.server.home import Home
from passerelle.server.migrations import all_sets
from passerelle.server.settings import (
    Settings,
    SettingsError,
    resolve,
    resolve_home,
)

# How `passerelle --help` groups its commands. Groups that later work fills in
# (`content`, `pack`, `users`, `search`, `index`, `sync`) take their place here.
SECTIONS = (
    ("Run the box", ("serve", "config", "migrate", "check")),
    ("Keep data safe", ("backup", "restore", "db")),
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
        target = dbmod.target(self.home, settings)
        if target != str(self.home.db_path):  # a hub on PostgreSQL keeps packs in the home
            dbmod.prepare(self.home.db_path, settings["db_busy_timeout_ms"], sets=all_sets()[1:])
        return dbmod.prepare(target, settings["db_busy_timeout_ms"])

    @property
    def db_target(self) -> str:
        """The records' database: the SQLite file in the home, or the hub's PostgreSQL URL."""
        return dbmod.target(self.home, self.settings())

    def open_db(self):
        """A migrated database connection for one command; the caller closes it."""
        self.prepare()
        return dbmod.connect(self.db_target, self.settings()["db_busy_timeout_ms"])

    @contextmanager
    def reports_db(self):
        """``with env.reports_db() as db:`` — where reports read: the hub's read replica
        (``reports_database_url``, one consistent snapshot), else :meth:`db`."""
        settings = self.settings()
        source = dbmod.reports_target(self.home, settings)
        if source == self.db_target:
            with self.db() as db:
                yield db
            return
        with dbmod.snapshot(source, settings["db_busy_timeout_ms"]) as db:
            yield db

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


# --- entry point -------------------------------------------------------------------

def translate(exc: BaseException) -> PasserelleError | None:
    """Any failure, made into the server's errors at the CLI edge.

    Libraries' exceptions go through :func:`errors.translate`, the translation the
    web pages and the API use too; only the command line also names files.
    """
    known = errors.translate(exc)
    if known is not None:
        return known
    if isinstance(exc, SettingsError):
        return ConfigError(str(exc))
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{exc.filename}: no such file or folder")
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return InvalidInput(f"{exc.filename}: {exc.strerror}")
    return None



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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
