"""`passerelle users`: rosters in and out, from the command line."""

from __future__ import annotations

from pathlib import Path

import click
from passerelle.server.cli.base import Env, pass_env
from passerelle.server.errors import InvalidInput
from passerelle.server.people import accounts, roster


@click.group()
def users() -> None:
    """People on this box: import a roster, export everyone, list.

    Example: passerelle users import roster.csv --class "Groupe A"
    """


@users.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--class", "class_name", metavar="NAME",
              help="Put everyone whose row has no class into this class (made if missing).")
@click.option("--dry-run", is_flag=True, help="Check every row and report; import nothing.")
@pass_env
def users_import(env: Env, file: Path, class_name: str | None, dry_run: bool) -> None:
    """Import people from a CSV file: all rows, or none when any row is wrong.

    Columns (header row required; `,` or `;` between columns): display_name (required),
    username, role (learner, facilitator, coordinator; default learner), pin, password,
    class, language, avatar, age_band, gender, languages_spoken (separated by |),
    newcomer, employment. Profile columns are kept only when the organisation asks them.

    Example: passerelle users import roster.csv --class "Groupe A" --dry-run
    """
    with env.db() as db:
        if accounts.needs_setup(db):
            raise InvalidInput("set the box up first (open it in a browser): rosters need an "
                               "organisation and its sign-in mode")
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{file} is not UTF-8 text; save it as 'CSV UTF-8'") from None
        if dry_run:
            checked = roster.check(db, text, class_name)
            for line in checked.problems():
                click.echo(line)
            if not checked.ok:
                raise InvalidInput(f"{len(checked.problems())} problem(s); nothing was imported")
            updates = checked.count("update")
            click.echo(f"{checked.count('add')} people are ready to import"
                       + (f", {updates} to update" if updates else ""))
            return
        try:
            result = roster.import_roster(db, text, class_name)
        except InvalidInput as exc:
            for line in (exc.details or {}).get("rows", []):
                click.echo(line, err=True)
            raise
        if result["updated"]:
            click.echo(f"imported {result['created']} people, updated {result['updated']}")
        else:
            click.echo(f"imported {result['created']} people")


@users.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of the terminal.")
@pass_env
def users_export(env: Env, output: Path | None) -> None:
    """Export everyone as CSV (no password or PIN ever leaves).

    Example: passerelle users export -o people.csv
    """
    with env.db() as db:
        text = roster.export(db)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@users.command("list")
@click.option("--role", type=click.Choice(accounts.ROLES), help="Only this role.")
@pass_env
def users_list(env: Env, role: str | None) -> None:
    """List people: name, role, username.

    Example: passerelle users list --role facilitator
    """
    with env.db() as db:
        for user in accounts.list_users(db, role):
            click.echo(f"{user['display_name']:<30} {user['role']:<12} {user['username'] or ''}")
