"""`passerelle sync`: identity, trust, export to a folder, import elsewhere, status, revoke."""

from __future__ import annotations

import json

from passerelle.server import db as dbmod
from passerelle.server import records
from passerelle.server.errors import ExitStatus


def test_export_to_a_folder_import_elsewhere_and_status(sync_cli, tmp_path):
    a, b, stick = tmp_path / "a", tmp_path / "b", tmp_path / "stick"
    stick.mkdir()
    ident = {}
    for home in (a, b):
        code, out, err = sync_cli(home, "identity", "--json")
        assert code == 0, err
        ident[home] = json.loads(out)
    code, out, _ = sync_cli(a, "identity")
    assert f"passerelle sync trust {ident[a]['device_id']} {ident[a]['public_key']}" in out

    db = dbmod.connect(a / "passerelle.db")
    for i in range(3):
        records.put(db, "user", f"u{i}", {"role": "learner", "display_name": f"Learner {i}"})
    db.close()

    code, out, err = sync_cli(a, "export", str(stick))
    assert code == 0, err
    (bundle,) = stick.glob("passerelle-*.bundle")
    assert f"wrote {bundle}: 3 operations in 1 batches" in out

    # b does not trust a yet: one line, a named exit code, nothing applied.
    code, out, err = sync_cli(b, "import", str(bundle))
    assert code == ExitStatus.INVALID_INPUT
    assert err.count("\n") == 1 and "does not trust" in err and "passerelle sync trust" in err

    code, out, err = sync_cli(b, "trust", ident[a]["device_id"], ident[a]["public_key"],
                              "--label", "Box A")
    assert code == 0, err
    code, out, err = sync_cli(b, "import", str(bundle))
    assert code == 0, err
    assert f"imported 3 operations from {ident[a]['device_id']} (0 already here)" in out
    code, out, err = sync_cli(b, "import", str(bundle))
    assert "imported 0 operations" in out and "(3 already here)" in out

    code, out, err = sync_cli(b, "status")
    assert code == 0, err
    assert f"This box: {ident[b]['device_id']}" in out
    assert f"{ident[a]['device_id']}          3  Box A" in out
    assert "Last import: " in out and "imported 0 operations" in out
    assert "Last export: never" in out
    assert "Last error: " in out and "does not trust" in out

    code, out, err = sync_cli(b, "status", "--json")
    assert json.loads(out)["vector"] == {ident[a]["device_id"]: 3}

    # Only what b lacks, once a has heard from b.
    code, out, err = sync_cli(a, "trust", ident[b]["device_id"], ident[b]["public_key"])
    code, out, err = sync_cli(b, "export", str(stick / "from-b.bundle"))
    assert code == 0 and ": 3 operations" in out  # a's, relayed back: duplicates there
    code, out, err = sync_cli(a, "import", str(stick / "from-b.bundle"))
    assert code == 0, err
    code, out, err = sync_cli(a, "export", str(stick / "again.bundle"), "--for", ident[b]["device_id"])
    assert code == 0 and "0 operations in 0 batches" in out

    code, out, err = sync_cli(b, "revoke", ident[a]["device_id"])
    assert code == 0 and "its 3 operations already here are kept" in out
    code, out, err = sync_cli(b, "import", str(bundle))
    assert code == ExitStatus.INVALID_INPUT and "revoked" in err


def test_encrypted_export_and_bad_input(sync_cli, tmp_path):
    a = tmp_path / "a"
    code, out, err = sync_cli(a, "export", str(tmp_path / "x.bundle"), "--passphrase", "s3cret words")
    assert code == 0, err
    code, out, err = sync_cli(a, "import", str(tmp_path / "x.bundle"))
    assert code == ExitStatus.INVALID_INPUT and "encrypted" in err
    code, out, err = sync_cli(a, "import", str(tmp_path / "x.bundle"), "--passphrase", "s3cret words")
    assert code == 0, err
    code, out, err = sync_cli(a, "trust", "some-device", "not-a-key")
    assert code == ExitStatus.INVALID_INPUT and "not a public key" in err
    code, out, err = sync_cli(a, "revoke", "nobody")
    assert code == ExitStatus.NOT_FOUND
    code, out, err = sync_cli(a, "import", str(tmp_path / "missing.bundle"))
    assert code == ExitStatus.NOT_FOUND
    (tmp_path / "junk.bundle").write_text("hello")
    code, out, err = sync_cli(a, "import", str(tmp_path / "junk.bundle"))
    assert code == ExitStatus.INVALID_INPUT and "not a whole sync bundle" in err


def test_every_sync_command_help_ends_with_an_example(sync_cli):
    from click.testing import CliRunner
    from passerelle.server.cli.sync import sync

    for name in [None, *sync.commands]:
        args = ([name] if name else []) + ["--help"]
        result = CliRunner().invoke(sync, args)
        assert result.exit_code == 0 and "Example: passerelle sync" in result.output, name
