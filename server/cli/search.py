"""`passerelle search` and `passerelle index`: the search index from the command line."""

from __future__ import annotations

import json

import click
from passerelle.server.cli.base import Env, pass_env
from passerelle.server.cli.content import open_library
from passerelle.server.errors import InvalidInput, PasserelleError
from passerelle.server.search.service import KINDS, SearchService


class IndexDrift(PasserelleError):
    code = "index_drift"
    status = 500


def _service(env: Env) -> SearchService:
    library = open_library(env)
    return next(listener.service for listener in library.listeners if hasattr(listener, "service"))


@click.command()
@click.argument("query")
@click.option("--kind", type=click.Choice(KINDS), multiple=True, help="Only this kind (repeatable).")
@click.option("--language", multiple=True, metavar="LANG", help="Only this language (repeatable).")
@click.option("--pack", multiple=True, metavar="ID", help="Only this pack (repeatable).")
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def search(env: Env, query: str, kind, language, pack, limit: int, as_json: bool) -> None:
    """Search the installed content as learners do.

    Example: passerelle search "mot de passe" --kind video
    """
    from passerelle import search_index as si

    try:
        result = _service(env).index.search(query, kinds=kind or None, languages=language or None,
                                            packs=pack or None, limit=limit)
    except si.QuerySyntaxError as exc:
        raise InvalidInput(str(exc)) from None
    if as_json:
        click.echo(json.dumps({
            "total": result.total, "mode": result.mode, "did_you_mean": result.did_you_mean,
            "facets": result.facets,
            "hits": [{"id": h.id, "kind": h.kind, "language": h.language, "title": h.title,
                      "score": h.score} for h in result.hits]}, ensure_ascii=False, indent=2))
        return
    if result.did_you_mean:
        click.echo(f"did you mean: {result.did_you_mean}")
    click.echo(f"{result.total} result(s)" + ("" if result.mode == "all" else f" ({result.mode} match)"))
    for hit in result.hits:
        click.echo(f"  [{hit.kind}] {hit.title}  ({hit.id})")


@click.group()
def index() -> None:
    """Check the search index against the installed content, or rebuild it.

    Example: passerelle index check
    """


@index.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def index_check(env: Env, as_json: bool) -> None:
    """Report nodes missing from the index and entries no pack has any more.

    Exits non-zero when they differ; `passerelle index rebuild` repairs it.

    Example: passerelle index check --json
    """
    drift = _service(env).drift()
    if as_json:
        click.echo(json.dumps(drift, indent=2))
    else:
        click.echo(f"{drift['indexed']} documents indexed for {drift['expected']} nodes")
        for node in drift["missing"][:20]:
            click.echo(f"  missing: {node}")
        for node in drift["stale"][:20]:
            click.echo(f"  stale: {node}")
    if drift["missing"] or drift["stale"]:
        raise IndexDrift(f"the index differs from the content ({len(drift['missing'])} missing, "
                         f"{len(drift['stale'])} stale); run `passerelle index rebuild`")


@index.command("rebuild")
@pass_env
def index_rebuild(env: Env) -> None:
    """Rebuild the search index from the installed packs (safe while serving).

    Example: passerelle index rebuild
    """
    from passerelle.server.search.pack_text import run_all

    service = _service(env)
    count = service.rebuild()
    # The text of big packs' documents too, unless a serving box is already at it.
    run_all(service.text)
    click.echo(f"indexed {count} documents")



@index.command("text")
@pass_env
def index_text(env: Env) -> None:
    """Index the text inside the documents of packs imported lately, now.

    A big pack is searchable by its titles and descriptions as soon as it is
    imported; the text of its PDFs, EPUBs, html5 pages and exercises follows in
    the background while the box serves. This runs what is left to the end here,
    resuming where an earlier run stopped.

    Example: passerelle index text
    """
    from passerelle.server.search.pack_text import run_all

    def report(pack_id, job) -> None:
        click.echo(f"{pack_id}: {job.percent}% ({job.indexed} documents with their text)", err=True)

    text = _service(env).text
    left = run_all(text, report)
    if left:
        raise InvalidInput(f"{', '.join(left)}: indexing cannot go on now (the disk of the box is "
                           "below its reserve, or the server is indexing it)")
    click.echo("the text of every pack's documents is indexed")


@index.command("zim")
@click.argument("uuid", required=False)
@pass_env
def index_zim(env: Env, uuid: str | None) -> None:
    """Index the articles of ZIM files without a full-text index of their own, now.

    A serving box does it in the background; this runs the queued ones (or UUID)
    to the end here, resuming where an earlier run stopped.

    Example: passerelle index zim
    """
    from passerelle.content import zim as zimlib
    from passerelle.server.packs.zim import indexer_for

    zimlib.limit_cluster_cache()
    indexer = indexer_for(env.home, env.settings())
    if uuid:
        indexer.queue(uuid)
    todo = [uuid] if uuid else indexer.pending()
    for one in todo:
        title = indexer.zims.get(one).title
        while indexer.step(one, slice_seconds=5.0):
            job = indexer.status(one)
            click.echo(f"{title}: {job.percent}% ({job.indexed} articles)", err=True)
        job = indexer.status(one)
        if job.state == "queued":
            raise InvalidInput(f"{title}: indexing cannot go on now (its disk is not connected, "
                               "the disk of the box is below its reserve, or the server is "
                               "indexing it)")
        click.echo(f"{title}: {job.state}, {job.indexed} articles indexed"
                   + (f", {job.unreadable} entries unreadable" if job.unreadable else "")
                   + (f" ({job.error})" if job.error else ""))
    if not todo:
        click.echo("no ZIM waits to be indexed")
