"""``passerelle content import SOURCE`` when SOURCE is a Kolibri export or a Kolibri server.

SOURCE is an export folder (``KOLIBRI_DATA`` or ``KOLIBRI_HOME/content``) or the
URL of a Kolibri device on the LAN (``http://kolibri-box:8080/``). Without
``--channel`` it lists the channels found (name, language, version, size); with
it, it imports that channel, or only the ``--topic`` subtrees, through the
library's usual atomic, resumable install. The size to read is shown before
anything is copied; ``--dry-run`` stops there.
"""

from __future__ import annotations

import json

import click
from passerelle.content import kolibri, kolibri_remote
from passerelle.content.errors import human_size
from passerelle.server.errors import InvalidInput
from passerelle.server.search.service import text_waiting


def is_kolibri_server(source: str, channel: str | None) -> bool:
    """A URL given with --channel, or one whose public API says it is a Kolibri device."""
    if not kolibri_remote.is_url(source):
        return False
    return bool(channel) or kolibri_remote.KolibriServer(source).info() is not None


def list_channels(source: str, as_json: bool) -> None:
    if kolibri_remote.is_url(source):
        list_remote_channels(source, as_json)
        return
    channels, problems = kolibri.find_channels(source)
    if as_json:
        click.echo(json.dumps({"event": "result", "channels": [
            {k: v for k, v in c.as_dict().items() if k != "thumbnail"} for c in channels],
            "problems": [p.as_dict() for p in problems]}))
        return
    if not channels:
        click.echo(f"no readable Kolibri channel in {source}")
    for c in channels:
        click.echo(f"{c.id}  v{c.version:<4} {c.language:<6} {c.resources:>7} resources "
                   f"{human_size(c.size):>10}  {c.name}")
    for p in problems:
        click.echo(f"refused: {p.message}")
    if channels:
        click.echo("import one with: passerelle content import " f"{source} --channel CHANNEL_ID [--topic NODE_ID ...]")


def list_remote_channels(url: str, as_json: bool) -> None:
    channels = kolibri_remote.KolibriServer(url).channels()
    if as_json:
        click.echo(json.dumps({"event": "result", "channels": [
            {k: v for k, v in c.items() if k != "thumbnail"} for c in channels], "problems": []}))
        return
    if not channels:
        click.echo(f"no channel offered by the Kolibri server at {url}")
    for c in channels:
        click.echo(f"{c['id']}  v{c['version']:<4} {c['language']:<6} {c['resources']:>7} resources "
                   f"{human_size(c['size']):>10}  {c['name']}")
    if channels:
        click.echo(f"import one with: passerelle content import {url} --channel CHANNEL_ID [--topic NODE_ID ...]")


def import_channel(library, source: str, channel_id: str, topics: tuple[str, ...], video: str,
                   dry_run: bool, force: bool, as_json: bool, progress) -> None:
    module = kolibri_remote if kolibri_remote.is_url(source) else kolibri
    done = module.import_channel(library, source, channel_id, list(topics) or None, video=video,
                                 dry_run=dry_run, force=force, progress=progress)
    plan = done.plan
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(plan.kinds.items()))
    head = (f"{plan.channel.name} (kolibri-{plan.channel.id}) v{plan.channel.version}: "
            f"{plan.node_count} nodes ({kinds}), {human_size(plan.size)} to read")
    if plan.unavailable:
        head += "; not available on this box: " + ", ".join(
            f"{n} {k}" for k, n in sorted(plan.unavailable.items()))
    if plan.coach_only:
        head += f"; {plan.coach_only} for facilitators only"
    if dry_run:
        lines = [head + f"; dry run: nodes +{len(done.added)} ~{len(done.changed)} -{len(done.removed)}, "
                        "nothing copied"]
        for label, ids in (("added", done.added), ("changed", done.changed), ("removed", done.removed)):
            for node_id in ids[:20]:
                lines.append(f"{label}: {done.titles.get(node_id, '')} ({node_id})")
            if len(ids) > 20:
                lines.append(f"{label}: … and {len(ids) - 20} more")
        if done.kept:
            lines.append(f"learners' progress is kept on the {done.kept} resources that remain")
        if as_json:
            click.echo(json.dumps({"event": "result", **done.as_dict()}))
        else:
            click.echo("\n".join(lines))
        return
    r, rep = done.result, done.report
    lines = [head, f"{r.pack_id} v{r.version}: {r.status}; {r.blobs_copied} files "
                   f"({human_size(r.bytes_copied)}) copied"]
    if rep.questions_total:
        lines.append(f"exercises: {rep.questions_playable} of {rep.questions_total} questions playable"
                     + (f" (skipped: {', '.join(f'{k} {n}' for k, n in rep.skipped_widgets.most_common())})"
                        if rep.skipped_widgets else "")
                     + (f"; {rep.hidden_exercises} exercises hidden" if rep.hidden_exercises else ""))
    for label, items in (("missing", rep.missing), ("damaged", rep.damaged), ("refused", rep.refused)):
        for item in items[:20]:
            lines.append(f"{label}: {item}")
        if len(items) > 20:
            lines.append(f"{label}: … and {len(items) - 20} more")
    if rep.partial:
        lines.append("partial import: the resources above were left out; fix the export and import again")
    waiting = text_waiting(library, r.pack_id)
    if waiting:
        lines.append(waiting)
    if as_json:
        click.echo(json.dumps({"event": "result", **done.as_dict()}))
    else:
        click.echo("\n".join(lines))


def check_options(channel: str | None, topics: tuple[str, ...]) -> None:
    if topics and not channel:
        raise InvalidInput("--topic needs --channel (list the channels first: passerelle content import DIR)")
