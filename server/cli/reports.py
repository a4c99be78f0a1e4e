"""`passerelle report`: the impact report and the progress exports, from the command line."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import click
from passerelle.server.cli.base import Env, pass_env
from passerelle.server.reports import impact as reports


@click.group("report")
def report() -> None:
    """Impact report for funders; progress exports (CSV, xAPI) for a Learning Record Store.

    Example: passerelle report impact --start 2026-01-01 --end 2026-12-31
    """


def _write(chunks: Iterable[str], path: Path | None) -> int:
    """Write text chunks to a file (or stdout); returns the number of lines written."""
    lines = 0
    if path is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
            lines += chunk.count("\n")
        sys.stdout.flush()
        return lines
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as out:
        for chunk in chunks:
            out.write(chunk)
            lines += chunk.count("\n")
    tmp.replace(path)
    return lines


@report.command("impact")
@click.option("--start", metavar="YYYY-MM-DD", help="First day (default: a year before --end).")
@click.option("--end", metavar="YYYY-MM-DD", help="Last day, included (default: today, UTC).")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report as CSV (UTF-8 with BOM, for Excel) to this file.")
@pass_env
def report_impact(env: Env, start: str | None, end: str | None, csv_file: Path | None) -> None:
    """People reached, sessions, hours, completions, by pack, language and profile field.

    Counts under 5 in the profile breakdowns are shown as "< 5" (see docs).

    Example: passerelle report impact --start 2026-01-01 --end 2026-12-31 --csv impact.csv
    """
    with env.reports_db() as db:
        first, last = reports.date_range(start, end)
        result = reports.impact(db, first, last)
    if csv_file:
        csv_file.write_text(reports.impact_csv(result), encoding="utf-8", newline="")
        click.echo(f"wrote {csv_file}")
        return
    click.echo(f"{result.organisation}: {first.isoformat()} to {last.isoformat()}")
    width = max(len(section) + len(item) + len(measure) for section, item, measure, _ in result.rows())
    for section, item, measure, value in result.rows()[3:]:
        label = f"{section} {item} {measure}"
        click.echo(f"  {label:<{width + 2}} {value:>10}")


@report.command("progress")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of the terminal.")
@pass_env
def report_progress(env: Env, csv_file: Path | None) -> None:
    """All progress as CSV: one row per learner and resource (names included).

    Example: passerelle report progress --csv progress.csv
    """
    with env.reports_db() as db:
        lines = _write(reports.progress_csv(db), csv_file)
    if csv_file:
        click.echo(f"wrote {lines - 1} rows to {csv_file}", err=True)


@report.command("xapi")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--with-names", is_flag=True,
              help="Put each learner's display name in the statements (never by default).")
@pass_env
def report_xapi(env: Env, file: Path | None, with_names: bool) -> None:
    """Every learning event as an xAPI statement (JSON lines), for a Learning Record Store.

    The actor is an account (the learner's uuid on this organisation); statement ids are
    derived from the events, so sending an export again duplicates nothing. Without FILE,
    statements go to the terminal.

    Example: passerelle report xapi statements.jsonl
    """
    with env.reports_db() as db:
        lines = _write(reports.xapi_statements(db, with_names=with_names), file)
    if file:
        click.echo(f"wrote {lines} statements to {file}", err=True)
