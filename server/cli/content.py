"""The ``passerelle content`` and ``passerelle pack`` commands.

Thin wrappers over :mod:`passerelle.content`: the library does the work and
raises its own exceptions; :func:`passerelle.server.errors.translate` maps them
onto the server's :class:`~passerelle.server.errors.PasserelleError` family, so
failures print one line and exit with a named code.
Long operations show a progress bar on a terminal, or JSON lines with ``--json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click
from passerelle import content as lib
from passerelle.content import kolibri
from passerelle.content.errors import human_size
from passerelle.server.cli import kolibri as cli_kolibri
from passerelle.server.cli.base import Env, pass_env
from passerelle.server.errors import (
    InvalidInput,
    NotFound,
)
from passerelle.server.packs import library as packs_library

# --- helpers ------------------------------------------------------------------------

def open_library(env: Env, trusted_keys=(), require_signature: bool = False) -> lib.Library:
    """The box's library for one command, its search index kept in step (the CLI's way in)."""
    from passerelle.server.search.service import attach

    env.prepare()  # migrations of every set, the content library's included
    library = packs_library.open_library(env.home.ensure(), env.settings(), extra_keys=trusted_keys,
                                         require_signature=require_signature)
    # Imports and removals keep the search index in step.
    attach(library, env.home, parallel=True, settings=env.settings())
    return library


class _Progress:
    """``progress(done, total, label)`` → a bar on a terminal, JSON lines with --json, else nothing."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.label = None
        self.shown = 0
        self.last_json = -1

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.as_json:
            step = max(total // 100, 1)
            if done == total or done - self.last_json >= step:
                self.last_json = done
                click.echo(json.dumps({"event": "progress", "label": label, "done": done, "total": total}))
            return
        if not self.tty:
            return
        if label != self.label:
            self.close()
            self.label = label
            self.bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr)
            self.bar.__enter__()
            self.shown = 0
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _echo_result(as_json: bool, payload: dict, text: str) -> None:
    if as_json:
        click.echo(json.dumps({"event": "result", **payload}))
    else:
        click.echo(text)


def _read_keys(values: tuple[str, ...]) -> list[str]:
    keys = []
    for value in values:
        path = Path(value)
        keys.append(path.read_text().strip() if path.is_file() else value)
    return keys


# --- passerelle content -----------------------------------------------------------------

@click.group()
def content() -> None:
    """Install, update, export, remove and verify the packs on this box.

    Example: passerelle content import /media/usb/maths-fr.zip
    """


@content.command("import")
@click.argument("source", required=False)
@click.option("--bundled", is_flag=True, help="Build and import every pack shipped with Passerelle.")
@click.option("--dry-run", is_flag=True, help="Show what would change (nodes, bytes to copy); change nothing.")
@click.option("--force", is_flag=True, help="Accept an older version, or replace the same version.")
@click.option("--require-signature", is_flag=True, help="Refuse packs not signed by a --trusted-key.")
@click.option("--trusted-key", "trusted", multiple=True, metavar="KEY|FILE",
              help="A publisher key (ed25519:...) or a file holding one; repeatable.")
@click.option("--channel", metavar="ID", help="Kolibri export folder or server: the channel to import.")
@click.option("--topic", "topics", multiple=True, metavar="NODE_ID",
              help="Kolibri: import only this topic's subtree; repeatable.")
@click.option("--video", type=click.Choice(["low", "high"]), default=None,
              help="Kolibri: which video resolution to take when a channel has both "
                   "[default: the kolibri_video setting, low].")
@click.option("--copy", is_flag=True,
              help="ZIM files: copy it into the data home instead of serving it where it is.")
@click.option("--verify", is_flag=True,
              help="ZIM files: check the checksum over the whole file, however big.")
@click.option("--no-index", "no_index", is_flag=True,
              help="ZIM files without a full-text index: do not index their articles for "
                   "search (for huge files; the content page can start it later).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines for scripts.")
@pass_env
def content_import(env: Env, source: str | None, bundled: bool, dry_run: bool, force: bool,
                   require_signature: bool, trusted: tuple[str, ...], channel: str | None,
                   topics: tuple[str, ...], video: str | None, copy: bool, verify: bool,
                   no_index: bool, as_json: bool) -> None:
    """Install or update a pack from a zip, a folder (USB stick) or another box's URL,
    or add a Kiwix ZIM file (Wikipedia...), also split ones (.zimaa, .zimab...).

    Only missing files are copied and each is verified; the pack appears all at
    once or not at all. The same version again does nothing. A ZIM is served
    where it is (a large disk) unless --copy; it is never unpacked.

    A Kolibri export folder (KOLIBRI_DATA, or KOLIBRI_HOME/content) or a Kolibri
    server's URL (http://kolibri-box:8080/) lists its channels; --channel imports
    one, --topic only some of its topics. From a server, only the files the box
    lacks are fetched, and an interrupted import resumes.

    Example: passerelle content import http://192.168.1.20:8080/packs/maths-fr --dry-run

    Example: passerelle content import /media/usb/wikipedia_fr_all_maxi.zim
    """
    if bool(source) == bundled:
        raise click.UsageError("give either SOURCE or --bundled")
    if source and is_zim(source):
        _import_zim(env, source, copy, verify, dry_run, as_json, no_index)
        return
    if copy or verify or no_index:
        raise click.UsageError("--copy, --verify and --no-index are for ZIM files; packs are "
                               "always copied, verified and indexed")
    if source and ((Path(source).is_dir() and kolibri.is_kolibri_folder(source))
                   or cli_kolibri.is_kolibri_server(source, channel)):
        cli_kolibri.check_options(channel, topics)
        if not channel:
            cli_kolibri.list_channels(source, as_json)
            return
        progress = _Progress(as_json)
        try:
            cli_kolibri.import_channel(open_library(env), source, channel, topics,
                                       video or env.settings()["kolibri_video"], dry_run, force,
                                       as_json, progress)
        finally:
            progress.close()
        return
    if channel or topics:
        raise InvalidInput(f"{source}: --channel and --topic are for Kolibri export folders and servers, "
                           "and no Kolibri channel was found there")
    library = open_library(env, _read_keys(trusted), require_signature)
    if bundled:
        _import_bundled(library, dry_run, force, as_json)
        return
    folder = Path(source)
    if folder.is_dir() and (folder / "pack.yaml").exists() and not (folder / "manifest.json").exists():
        raise InvalidInput(f"{source} is an authoring folder, not a pack: build it first with "
                           f"`passerelle pack build {source} -o pack.zip`")
    _import_one(library, source, dry_run, force, as_json)


ZIM_MAGIC = b"ZIM\x04"


def is_zim(source: str) -> bool:
    """A ZIM by its name (.zim, .zimaa...) or by its first four bytes."""
    name = source.lower()
    if name.endswith(".zim") or lib.zim.SPLIT_SUFFIX.search(name):
        return True
    try:
        with open(source, "rb") as f:
            return f.read(4) == ZIM_MAGIC
    except OSError:
        return False


def _import_zim(env: Env, source: str, copy: bool, verify: bool, dry_run: bool,
                as_json: bool, no_index: bool = False) -> None:
    from passerelle.server.packs.zim import indexer_for, library_for

    if not lib.zim.AVAILABLE:
        raise lib.ZimUnsupported()
    env.prepare()
    if dry_run:
        facts = lib.zim.inspect(source, full_check=True if verify else None)
        text = (f"{facts['title']} ({facts['uuid']}): valid ZIM, {facts['article_count']} articles, "
                f"{human_size(facts['size'])}; would be {'copied' if copy else 'served in place'}")
        _echo_result(as_json, {k: v for k, v in facts.items() if k != "illustration"}, text)
        return
    zims = library_for(env.home, env.settings()["db_busy_timeout_ms"])
    progress = _Progress(as_json)
    try:
        result = zims.add(source, copy=copy, full_check=True if verify else None, progress=progress)
    finally:
        progress.close()
    text = (f"{result.title} ({result.uuid}): {result.status}, {human_size(result.size)}, "
            f"served from {result.path}"
            + "".join(f"\nwarning: {w}" for w in result.warnings))
    indexing = _zim_indexing(indexer_for(env.home, env.settings(), zims), result.uuid, no_index,
                             env.settings()["zim_index"])
    if indexing:
        text += f"\n{indexing}"
    _echo_result(as_json, {**result.as_dict(), "indexing": indexing}, text)


def _zim_indexing(indexer, uuid: str, no_index: bool, auto: bool) -> str:
    """Queue a ZIM without a full-text index for the box's own (or skip it); what was done."""
    if indexer.zims.get(uuid).has_fulltext:
        return ""
    if no_index or not auto:
        indexer.skip(uuid)
        return ("not indexed for full-text search (titles only); the content page or "
                "`passerelle index zim` can index it later")
    indexer.queue(uuid)
    return ("it has no full-text index: its articles will be indexed for search in the "
            "background while the box serves (or now: `passerelle index zim`)")


def _import_one(library: lib.Library, source, dry_run: bool, force: bool, as_json: bool) -> lib.ImportResult:
    progress = _Progress(as_json)
    try:
        result = library.import_pack(source, force=force, dry_run=dry_run, progress=progress)
    finally:
        progress.close()
    d = result.diff
    text = (f"{result.pack_id} v{result.version}: {result.status}"
            + (f" (was v{result.previous_version})" if result.previous_version
               and result.previous_version != result.version else "")
            + f"; nodes +{len(d.added)} ~{len(d.changed)} -{len(d.removed)}; "
            f"{result.blobs_copied} files ({human_size(result.bytes_copied)}) "
            f"{'to copy' if dry_run else 'copied'}"
            + (f"; {result.blobs_removed} unused files deleted" if result.blobs_removed else ""))
    if not dry_run:
        from passerelle.server.search.service import text_waiting

        waiting = text_waiting(library, result.pack_id)
        text += f"\n{waiting}" if waiting else ""
    _echo_result(as_json, result.as_dict(), text)
    return result


def _import_bundled(library: lib.Library, dry_run: bool, force: bool, as_json: bool) -> None:
    bundled = Path(lib.__file__).parent / "bundled"
    folders = sorted(p for p in bundled.glob("*/") if (p / "pack.yaml").is_file()) if bundled.is_dir() else []
    if not folders:
        raise NotFound(f"no bundled packs in {bundled}")
    installed = {p.id: p.version for p in library.list()}
    with tempfile.TemporaryDirectory(dir=library.work.parent if library.work.parent.exists() else None) as tmp:
        for folder in folders:
            out = Path(tmp) / folder.name
            built = lib.build_pack(folder, out, folder=True)
            m = built.manifest
            if installed.get(m["id"]) == m["version"] and not force:
                _echo_result(as_json, {"pack_id": m["id"], "version": m["version"], "status": "already installed"},
                             f"{m['id']} v{m['version']}: already installed")
                continue
            _import_one(library, out, dry_run, force, as_json)


@content.command("export")
@click.argument("pack_id")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--folder", is_flag=True, help="Write a folder instead of a zip (e.g. onto a USB stick).")
@pass_env
def content_export(env: Env, pack_id: str, dest: Path, folder: bool) -> None:
    """Write an installed pack out again, to carry it to another box.

    The manifest is byte-identical to the one imported (a signature stays valid).

    Example: passerelle content export maths-fr /media/usb/maths-fr.zip
    """
    library = open_library(env)
    progress = _Progress(False)
    try:
        path = library.export(pack_id, dest, "folder" if folder else "zip", progress=progress)
    finally:
        progress.close()
    click.echo(f"exported {pack_id} to {path}")


@content.command("remove")
@click.argument("pack_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_env
def content_remove(env: Env, pack_id: str, yes: bool) -> None:
    """Uninstall a pack and delete the files no other pack uses.

    Learners' progress on its lessons stays in the database.

    Example: passerelle content remove maths-fr --yes
    """
    library = open_library(env)
    if lib.zim.AVAILABLE and _remove_zim(env, pack_id, yes):
        return
    info = library.get(pack_id)
    if not yes and not click.confirm(f"Remove {info.id} v{info.version} ({info.title})?", default=False):
        raise click.Abort()
    removed = library.remove(pack_id)
    click.echo(f"removed {pack_id}; {removed} unused files deleted")


def _remove_zim(env: Env, uuid: str, yes: bool) -> bool:
    """``content remove <zim uuid>``: forget a ZIM (its file is deleted only if it was copied)."""
    from passerelle.server.packs.zim import library_for

    zims = library_for(env.home, env.settings()["db_busy_timeout_ms"])
    try:
        info = zims.get(uuid)
    except lib.ZimNotFound:
        return False
    if not yes and not click.confirm(f"Remove {info.title} ({uuid})?", default=False):
        raise click.Abort()
    deleted = zims.remove(uuid)
    from passerelle.server.packs.zim import indexer_for

    indexer_for(env.home, env.settings(), zims).forget(uuid)   # its search index, if any
    click.echo(f"removed {info.title}; " + ("its copy in the data home was deleted" if deleted
                                           else f"{info.path} was left where it is"))
    return True


@content.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def content_verify(env: Env, as_json: bool) -> None:
    """Re-hash every stored file; move damaged ones to storage/quarantine/.

    Exits non-zero when something was damaged or missing, and names the packs
    to import again.

    Example: passerelle content verify --json
    """
    library = open_library(env)
    progress = _Progress(as_json)
    try:
        report = library.verify(progress=progress)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps({"event": "result", **report.as_dict()}))
    else:
        click.echo(f"checked {report.checked} files ({human_size(report.bytes_checked)})")
        for sha in report.damaged:
            click.echo(f"damaged (quarantined): {sha}")
        for sha in report.missing:
            click.echo(f"missing: {sha}")
    if not report.ok:
        raise InvalidInput(f"{len(report.damaged)} damaged and {len(report.missing)} missing files; "
                           f"import again: {', '.join(report.affected_packs) or '(no pack affected)'}")


@content.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def content_list(env: Env, as_json: bool) -> None:
    """List the installed packs.

    Example: passerelle content list --json
    """
    packs = open_library(env).list()
    zims = _zims(env)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in packs], indent=2))
        return
    if not packs:
        click.echo("no packs installed")
    for p in packs:
        state = "" if not p.missing_blobs else f"  INCOMPLETE ({p.missing_blobs} files missing)"
        click.echo(f"{p.id:<24} v{p.version:<4} {p.language:<6} {p.node_count:>7} nodes "
                   f"{human_size(p.total_size):>10}  {p.title}{state}")
    if not lib.zim.AVAILABLE:
        click.echo(f"ZIM files: unavailable ({lib.zim.UNAVAILABLE_REASON})")
    for z in zims:
        state = ("" if z.available else "  UNAVAILABLE (disk not connected)") + (
            "  hidden" if z.hidden else "")
        click.echo(f"{z.uuid:<36} zim {z.language:<6} {z.article_count:>7} articles "
                   f"{human_size(z.size):>10}  {z.title}{state}")


def _zims(env: Env) -> list:
    from passerelle.server.packs.zim import library_for

    return library_for(env.home, env.settings()["db_busy_timeout_ms"]).list()


# --- passerelle pack --------------------------------------------------------------------

@click.group()
def pack() -> None:
    """Build, check and sign packs (for publishers; no box needed).

    Example: passerelle pack build ./my-course -o my-course.zip
    """


@pack.command("build")
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Pack to write.")
@click.option("--folder", is_flag=True, help="Write a folder pack instead of a zip.")
@click.option("--created", metavar="RFC3339",
              help="The pack's creation time [default: SOURCE_DATE_EPOCH, else the newest file's time].")
def pack_build(src_dir: Path, out: Path, folder: bool, created: str | None) -> None:
    """Build an authoring folder (docs/authoring-format.md) into a pack.

    The same source always gives the same manifest, byte for byte.

    Example: passerelle pack build content/bundled/digital-basics -o digital-basics.zip
    """
    result = lib.build_pack(src_dir, out, folder=folder, created=created)
    m = result.manifest
    click.echo(f"built {m['id']} v{m['version']} ({len(m['nodes'])} nodes) into {result.path}")


@pack.command("check")
@click.argument("pack_path")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def pack_check(pack_path: str, as_json: bool) -> None:
    """List every problem of a pack (zip, folder or URL), each with where it is.

    Exits non-zero when there is at least one error (warnings alone pass).

    Example: passerelle pack check maths-fr.zip
    """
    problems = lib.check_pack(pack_path)
    errors = [p for p in problems if p.severity == "error"]
    if as_json:
        click.echo(json.dumps({"ok": not errors, "problems": [p.as_dict() for p in problems]}, indent=2))
    else:
        for p in problems:
            click.echo(f"{p.severity}: {p}")
        if not errors:
            click.echo(f"{pack_path}: ok")
    if errors:
        raise InvalidInput(f"{pack_path}: {len(errors)} problem(s)")


@pack.command("keygen")
@click.argument("keyfile", type=click.Path(path_type=Path))
def pack_keygen(keyfile: Path) -> None:
    """Make a publisher key pair: KEYFILE (private, keep it safe) and KEYFILE.pub.

    Example: passerelle pack keygen ~/.passerelle-publisher.key
    """
    if keyfile.exists():
        raise InvalidInput(f"{keyfile} already exists; refusing to overwrite a key")
    pair = lib.generate_keypair()
    keyfile.parent.mkdir(parents=True, exist_ok=True)
    keyfile.touch(mode=0o600)
    keyfile.write_bytes(pair.private_pem)
    keyfile.with_name(keyfile.name + ".pub").write_text(pair.public_key + "\n")
    click.echo(f"private key: {keyfile}\npublic key:  {pair.public_key}")


@pack.command("sign")
@click.argument("pack_path", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "keyfile", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Private key made by `passerelle pack keygen`.")
def pack_sign(pack_path: Path, keyfile: Path) -> None:
    """Sign a pack (zip or folder): adds signature.json over its manifest.

    Example: passerelle pack sign maths-fr.zip --key ~/.passerelle-publisher.key
    """
    public = lib.sign_pack(pack_path, keyfile.read_bytes())
    click.echo(f"signed {pack_path} with {public}")
