"""`passerelle sync`: identity, pairing, syncing over HTTP, trusted devices, USB bundles, status."""

from __future__ import annotations

import json
from pathlib import Path

import click
from passerelle.server import sync as syncmod
from passerelle.server.cli.base import Env, pass_env
from passerelle.server.errors import NotFound
from passerelle.server.people import sites


@click.group()
def sync() -> None:
    """Carry data between boxes: pairing, sync over the network, USB bundles, status.

    Example: passerelle sync now
    """


@sync.command("identity")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def sync_identity(env: Env, as_json: bool) -> None:
    """Print this box's device id and public key (give both to the boxes it syncs with).

    The private key is made on first use in HOME/device.key (mode 0600); it is never
    in the database, so a backup never carries it.

    Example: passerelle sync identity
    """
    with env.db() as db:
        ident = syncmod.identity(db, env.home)
    if as_json:
        click.echo(json.dumps(ident, indent=2))
        return
    click.echo(f"device id:    {ident['device_id']}")
    click.echo(f"public key:   {ident['public_key']}")
    click.echo(f"organisation: {ident['organisation'] or '(not set up yet)'}")
    click.echo(f"On another box: passerelle sync trust {ident['device_id']} {ident['public_key']}")


@sync.command("trust")
@click.argument("device_id")
@click.argument("public_key")
@click.option("--label", metavar="TEXT", help="A name people recognise, e.g. 'Box Molenbeek'.")
@pass_env
def sync_trust(env: Env, device_id: str, public_key: str, label: str | None) -> None:
    """Accept the operations of another box, by its device id and public key.

    Run `passerelle sync identity` on the other box to read both. Trusting a device again
    replaces its key and lifts a revocation.

    Example: passerelle sync trust 1f0c2a9e-5d4b-4c1e-9a57-0b7d3e2f6a10 ed25519:Jx3t...= --label "Box Molenbeek"
    """
    with env.db() as db:
        syncmod.device_key(db, env.home)
        found = syncmod.trust(db, device_id, public_key, label=label)
    click.echo(f"this box now accepts the operations of {found['device_id']}"
               + (f" ({label})" if label else ""))


@sync.command("revoke")
@click.argument("device_id")
@pass_env
def sync_revoke(env: Env, device_id: str) -> None:
    """Stop accepting a device: its bundles and new operations are refused from now on.

    The operations of that device already on this box stay (they are learners' data).

    Example: passerelle sync revoke 1f0c2a9e-5d4b-4c1e-9a57-0b7d3e2f6a10
    """
    with env.db() as db:
        found = syncmod.revoke(db, device_id)
    click.echo(f"revoked {device_id}; its {found['ops_kept']} operations already here are kept; "
               "it can no longer sync with this box, and boxes that sync here learn it")


@sync.command("code")
@click.option("--minutes", type=click.IntRange(1, 60), default=syncmod.PAIR_MINUTES, show_default=True,
              help="How long the code stays valid.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def sync_code(env: Env, minutes: int, as_json: bool) -> None:
    """Make a one-time pairing code on the hub, for one box to pair with it.

    The code works once, for a few minutes, and stops working after a few wrong tries.
    On the box, run the command printed here.

    Example: passerelle sync code
    """
    from passerelle.server.web.serve import urls_for

    settings = env.settings()
    with env.db() as db:
        made = syncmod.make_pairing_code(db, env.home, minutes=minutes)
    urls = [u.rstrip("/") for u in urls_for(settings["host"], settings["port"])]
    if as_json:
        click.echo(json.dumps({**made, "urls": urls}, indent=2))
        return
    click.echo(f"pairing code: {made['code']}  (valid {minutes} minutes, once)")
    for url in urls:
        click.echo(f"On the box: passerelle sync pair {url} {made['code']}")


@sync.command("pair")
@click.argument("hub_url")
@click.argument("code")
@click.option("--label", metavar="TEXT", help="This box's name on the hub [default: its host name].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def sync_pair(env: Env, hub_url: str, code: str, label: str | None, as_json: bool) -> None:
    """Pair this box with its organisation's hub, with a code from the hub's coordinator.

    Both exchange their device keys, checked with the code both ways; the hub becomes
    this box's peer for `passerelle sync now`. A box not set up yet joins the hub's
    organisation at the first sync.

    Example: passerelle sync pair http://192.168.1.10:8080 K7QMX-W3P2D --label "Box Molenbeek"
    """
    from passerelle.server.sync import client as sync_client

    settings = env.settings()
    with env.db() as db:
        found = sync_client.pair(db, env.home, hub_url, code, label=label,
                                 timeout=settings["sync_timeout_seconds"])
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    click.echo(found["message"])
    click.echo("Next: passerelle sync now")


@sync.command("discover")
@click.option("--timeout", type=click.FloatRange(0.5, 60), default=3.0, show_default=True,
              help="Seconds to listen for answers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def sync_discover(env: Env, timeout: float, as_json: bool) -> None:
    """List the Passerelle boxes and hubs that announce themselves on this network (mDNS).

    Listens on the interfaces of the `host` setting (127.0.0.1: this machine only).
    Pair with one of them with `passerelle sync pair URL CODE`.

    Example: passerelle sync discover
    """
    from passerelle.server.sync import discovery

    found = discovery.browse(timeout=timeout, host=env.settings()["host"])
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in found], indent=2))
        return
    if not found:
        click.echo("no Passerelle box or hub answered on this network")
        return
    for p in found:
        org = f", organisation {p.organisation}" if p.organisation else ", not set up"
        click.echo(f"{p.role:<4} {p.url:<28} {p.name} (device {p.device_id}{org}, version {p.version})")


@sync.command("now")
@click.option("--peer", "peer_url", metavar="URL",
              help="Sync with this box or hub [default: the hub this box paired with].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def sync_now(env: Env, peer_url: str | None, as_json: bool) -> None:
    """Sync with the hub (or another paired box) now: receive, then send what is missing.

    Safe to interrupt: the next sync resumes where this one stopped, and nothing is
    counted twice.

    Example: passerelle sync now --peer http://192.168.1.10:8080
    """
    from passerelle.server import db as dbmod
    from passerelle.server.sync import client as sync_client

    settings = env.settings()
    env.prepare()
    path, timeout_ms = env.home.db_path, settings["db_busy_timeout_ms"]
    result = sync_client.sync_once(lambda: dbmod.connect(path, timeout_ms), env.home, peer_url,
                                   timeout=settings["sync_timeout_seconds"],
                                   max_ops=settings["sync_batch_ops"])
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif result.ok:
        click.echo(result.summary())
    else:
        moved = result.pulled.applied + result.pushed.applied
        if moved:
            click.echo(f"before the problem: received {result.pulled.applied} operations, sent "
                       f"{result.pushed.applied}; the next sync goes on from there")
    result.raise_for_error()


@sync.command("export")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--for", "for_device", metavar="DEVICE_ID",
              help="Only what that device lacks, as it said in the last bundle imported from it.")
@click.option("--passphrase", metavar="TEXT",
              help="Encrypt the batches (AES-256-GCM, key from scrypt); the importer needs it too. "
                   "Required when the organisation asks for encrypted bundles (its sync page).")
@pass_env
def sync_export(env: Env, dest: Path, for_device: str | None, passphrase: str | None) -> None:
    """Write a sync bundle: one file to carry to another box or the hub.

    DEST is a folder (the file is named passerelle-<device>-<time>.bundle) or a file path.
    The file is written under a temporary name and renamed when whole.

    Example: passerelle sync export /media/usb
    """
    with env.db() as db:
        since = None
        if for_device:
            since = syncmod.peer_vector(db, for_device)
            if since is None:
                raise NotFound(f"no bundle from {for_device} was imported here yet, so what it "
                               "lacks is unknown; export without --for")
        site = syncmod.device_site(db, for_device) if for_device else None
        info = syncmod.export_bundle(db, env.home, dest, since, passphrase=passphrase, site=site)
    click.echo(f"wrote {info.path}: {info.ops} operations in {info.batches} batches "
               f"({info.bytes:,} bytes)")


@sync.command("import")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--passphrase", metavar="TEXT", help="The passphrase of an encrypted bundle.")
@pass_env
def sync_import(env: Env, bundle: Path, passphrase: str | None) -> None:
    """Apply a sync bundle from a trusted box; importing it twice changes nothing.

    Refused, with nothing applied, when the bundle was altered, comes from a device that
    is not trusted or was revoked, or belongs to another organisation.

    Example: passerelle sync import /media/usb/passerelle-1f0c2a9e-20261122-101500.bundle
    """
    with env.db() as db:
        syncmod.device_key(db, env.home)
        result = syncmod.import_bundle(db, bundle, passphrase=passphrase)
    click.echo(result.summary())


@sync.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def sync_status(env: Env, as_json: bool) -> None:
    """Show this box's identity, the operations it holds per device, trusted devices and
    the last export, import and error.

    Example: passerelle sync status
    """
    with env.db() as db:
        info = syncmod.status(db, env.home)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    labels = {d["device_id"]: d["label"] for d in info["devices"]}
    click.echo(f"This box: {info['device_id']}")
    click.echo(f"Public key: {info['public_key']}")
    click.echo(f"Organisation: {info['organisation'] or '(not set up yet)'}")
    click.echo("Operations held, per device:")
    if not info["vector"]:
        click.echo("  none yet")
    for origin, seq in sorted(info["vector"].items()):
        who = "this box" if origin == info["device_id"] else (labels.get(origin) or "")
        click.echo(f"  {origin}  {seq:>9,}  {who}".rstrip())
    click.echo("Trusted devices:")
    if not info["devices"]:
        click.echo("  none yet (add one with: passerelle sync trust DEVICE_ID PUBLIC_KEY)")
    for d in info["devices"]:
        state = f"revoked {d['revoked_at'][:10]}" if d["revoked_at"] else f"since {d['paired_at'][:10]}"
        click.echo(f"  {d['device_id']}  {d['label'] or '':<20} {state}")
    click.echo("Peers:")
    if not info["peers"]:
        click.echo("  none yet (pair with the hub: passerelle sync pair HUB_URL CODE)")
    for p in info["peers"]:
        name = p["label"] or p["device_id"]
        default = " (default)" if p["device_id"] == info["default_peer"] else ""
        click.echo(f"  {name}{default}  {p['url'] or '(no address: it calls this box, or uses bundles)'}")
        click.echo(f"    last successful sync: {_when(p['last_ok_at'])}; last heard of: "
                   f"{_when(p['seen_at'])}")
        click.echo(f"    operations waiting for it: {p['ops_waiting']:,}")
        if p["revoked_at"]:
            click.echo(f"    revoked here on {p['revoked_at'][:10]}")
        if p["last_error"]:
            click.echo(f"    last error ({_when(p['last_error_at'])}): {p['last_error']}")
    for direction in ("export", "import"):
        entry = info["last"][direction]
        if entry is None:
            click.echo(f"Last {direction}: never")
        else:
            outcome = "" if entry["ok"] else " (problem)"
            click.echo(f"Last {direction}: {entry['at']}{outcome}: {entry['message']}")
    error = info["last_error"]
    if error:
        click.echo(f"Last error: {error['at']}: {error['message']}")


def _when(iso: str | None) -> str:
    return iso.replace("T", " ")[:16] + " UTC" if iso else "never"


# --- Sites -----------------------------------------------------------------------------------

@sync.group("site")
def sync_site() -> None:
    """Sites: a box belongs to one; it receives its site's learners and classes, and what is
    organisation-wide. Made and assigned on the hub.

    Example: passerelle sync site add Molenbeek
    """


@sync_site.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_env
def sync_site_list(env: Env, as_json: bool) -> None:
    """The organisation's sites, their boxes and how many learners call each home.

    Example: passerelle sync site list
    """
    with env.db() as db:
        found = sites.list_sites(db)
        learners = sites.counts(db)
        boxes = {d["device_id"]: d for d in syncmod.devices(db)}
        rows = [{**s, "learners": learners.get(s["uuid"], 0),
                 "boxes": sorted(d for d, info in boxes.items() if info.get("site") == s["uuid"])}
                for s in found]
        this = sites.this_site(db)
    if as_json:
        click.echo(json.dumps({"this_site": this, "sites": rows}, indent=2))
        return
    if not rows:
        click.echo("no sites yet (add one with: passerelle sync site add NAME)")
    for row in rows:
        here = " (this box)" if row["uuid"] == this else ""
        click.echo(f"{row['uuid']}  {row['name']}{here}: {row['learners']} learners, "
                   f"boxes: {', '.join(row['boxes']) or 'none'}")


@sync_site.command("add")
@click.argument("name")
@pass_env
def sync_site_add(env: Env, name: str) -> None:
    """Make a site.

    Example: passerelle sync site add Molenbeek
    """
    with env.db() as db:
        uuid = sites.create_site(db, name)
    click.echo(f"site {name}: {uuid}")


@sync_site.command("assign")
@click.argument("device_id")
@click.argument("site")
@pass_env
def sync_site_assign(env: Env, device_id: str, site: str) -> None:
    """Put a paired box in a site (SITE: its name or uuid; "none": everything, as before).

    Example: passerelle sync site assign 5d0f2c1e-... Molenbeek
    """
    with env.db() as db:
        site_uuid = None if site.lower() == "none" else sites.find_site(db, site)["uuid"]
        syncmod.assign_site(db, device_id, site_uuid)
    click.echo(f"{device_id} now receives {'everything' if site_uuid is None else site}")


@sync_site.command("move")
@click.argument("uuid")
@click.argument("site")
@click.option("--class", "is_class", is_flag=True, help="UUID is a class, not a learner.")
@pass_env
def sync_site_move(env: Env, uuid: str, site: str, is_class: bool) -> None:
    """Give a learner (or a class) another home site; their records and progress then reach
    that site's box.

    Example: passerelle sync site move 0b6e...-learner Schaerbeek
    """
    with env.db() as db:
        site_uuid = None if site.lower() == "none" else sites.find_site(db, site)["uuid"]
        sites.move(db, "class" if is_class else "user", uuid, site_uuid)
    click.echo(f"moved {uuid} to {site}")
