"""Signatures, and the `passerelle content` / `passerelle pack` commands end to end."""

from __future__ import annotations

import json
import zipfile

import pytest
from packhelpers import hand_pack, write_source
from passerelle.content import SignatureError, build_pack, generate_keypair, sign_pack


def test_signature_accept_and_refuse(tmp_path, box):
    publisher, stranger = generate_keypair(), generate_keypair()
    pack = build_pack(write_source(tmp_path / "src"), tmp_path / "p.zip").path
    sign_pack(pack, publisher.private_pem)
    strict = box.library(require_signature=True, trusted_keys=[publisher.public_key])
    assert strict.import_pack(pack).signer == publisher.public_key
    # Re-exported packs keep their signature.
    exported = strict.export("demo-pack", tmp_path / "again.zip")
    assert "signature.json" in zipfile.ZipFile(exported).namelist()

    other = tmp_path / "other.zip"
    build_pack(write_source(tmp_path / "src2", pack_id="other-pack"), other)
    sign_pack(other, stranger.private_pem)
    before = box.snapshot()
    with pytest.raises(SignatureError, match="does not trust"):
        strict.import_pack(other)
    # A tampered manifest: the signature no longer matches, refused even when optional.
    folder = tmp_path / "folder"
    build_pack(write_source(tmp_path / "src3", pack_id="third-pack"), folder, folder=True)
    sign_pack(folder, publisher.private_pem)
    m = json.loads((folder / "manifest.json").read_text())
    m["title"] = "Tampered"
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SignatureError, match="does not match"):
        box.library().import_pack(folder)
    assert box.snapshot() == before


# --- CLI -----------------------------------------------------------------------------------

@pytest.fixture
def run(tmp_path, capsys):
    from passerelle.server.cli import base as climod

    home = tmp_path / "home"

    def invoke(*args):
        code = climod.main(["--home", str(home), *map(str, args)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def test_cli_build_check_import_list_export_remove(tmp_path, run):
    src = write_source(tmp_path / "src")
    code, out, _ = run("pack", "build", src, "-o", tmp_path / "p.zip", "--created", "2026-01-01T00:00:00Z")
    assert code == 0 and "demo-pack v1" in out
    code, out, _ = run("pack", "check", tmp_path / "p.zip")
    assert code == 0 and "ok" in out
    code, out, _ = run("content", "import", tmp_path / "p.zip", "--dry-run")
    assert code == 0 and "dry run" in out
    code, out, _ = run("content", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = run("content", "import", tmp_path / "p.zip", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and lines[-1]["event"] == "result" and lines[-1]["status"] == "installed"
    assert any(line["event"] == "progress" for line in lines)
    code, out, _ = run("content", "import", tmp_path / "p.zip")
    assert code == 0 and "already installed" in out
    code, out, _ = run("content", "list")
    assert "demo-pack" in out
    code, out, _ = run("content", "verify", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["ok"] is True
    code, out, _ = run("content", "export", "demo-pack", tmp_path / "out", "--folder")
    assert code == 0 and (tmp_path / "out" / "manifest.json").exists()
    code, out, _ = run("content", "remove", "demo-pack", "--yes")
    assert code == 0 and "removed" in out
    code, _, err = run("content", "remove", "demo-pack", "--yes")
    assert code == 5 and "no pack" in err


def test_cli_errors_exit_codes(tmp_path, run):
    bad = hand_pack(tmp_path, "bad")
    m = json.loads((bad / "manifest.json").read_text())
    m["nodes"][1]["parent"] = "ghost"
    (bad / "manifest.json").write_text(json.dumps(m))
    code, out, _ = run("pack", "check", bad)
    assert code == 7 and "nodes[1].parent: orphan" in out
    code, _, err = run("content", "import", bad)
    assert code == 7 and "orphan" in err
    run("content", "import", hand_pack(tmp_path, "v2", version=2))
    code, _, err = run("content", "import", hand_pack(tmp_path, "v1", version=1))
    assert code == 6 and "--force" in err
    code, _, err = run("content", "import", tmp_path / "nope.zip")
    assert code == 5


def test_cli_keygen_sign_and_require(tmp_path, run):
    key = tmp_path / "keys" / "publisher.key"
    code, out, _ = run("pack", "keygen", key)
    assert code == 0 and key.exists() and (key.parent / "publisher.key.pub").exists()
    pack = hand_pack(tmp_path, "p")
    code, _, err = run("content", "import", pack, "--require-signature", "--trusted-key", f"{key}.pub")
    assert code == 7 and "not signed" in err
    assert run("pack", "sign", pack, "--key", key)[0] == 0
    code, out, _ = run("content", "import", pack, "--require-signature", "--trusted-key", f"{key}.pub")
    assert code == 0 and "installed" in out


def test_the_box_can_trust_only_its_publishers_keys(tmp_path, run):
    key = tmp_path / "keys" / "publisher.key"
    run("pack", "keygen", key)
    public = (key.parent / "publisher.key.pub").read_text().strip()
    home = tmp_path / "home"
    home.mkdir()
    (home / "passerelle.toml").write_text(
        f'require_signed_packs = true\ntrusted_publisher_keys = ["{public}"]\n')
    pack = hand_pack(tmp_path, "p")
    code, _, err = run("content", "import", pack)
    assert code == 7 and "not signed" in err
    run("pack", "sign", pack, "--key", key)
    code, out, _ = run("content", "import", pack)
    assert code == 0 and "installed" in out


def test_cli_import_bundled(tmp_path, run):
    from pathlib import Path

    from passerelle import content

    bundled = Path(content.__file__).parent / "bundled"
    assert len(list(bundled.glob("*/pack.yaml"))) == 5
    code, out, err = run("content", "import", "--bundled")
    assert code == 0, err
    code, out, _ = run("content", "import", "--bundled")
    assert code == 0 and "already installed" in out


def test_every_command_help_ends_with_example():
    from passerelle.server.cli.content import content, pack

    for group in (content, pack):
        assert "Example:" in group.help
        for cmd in group.commands.values():
            assert cmd.help.strip().splitlines()[-1].strip().startswith("Example:"), cmd.name


def test_importing_an_authoring_folder_says_to_build_it(tmp_path, run):
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "fixtures" / "demo-pack"
    code, _, err = run("content", "import", source)
    assert code == 7 and "pack build" in err
