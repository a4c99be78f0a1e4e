"""Publisher signatures: Ed25519 over the exact bytes of ``manifest.json``.

The signature lives next to the manifest in ``signature.json``::

    {"format": 1, "algorithm": "ed25519",
     "public_key": "<base64 of the 32-byte raw key>", "signature": "<base64>"}

Signing the manifest is enough: it lists the SHA-256 of every blob, and every
blob is verified against it while it is copied. Keeping the signature out of
the manifest means the signed bytes are exactly the bytes a box stores and
re-exports. A public key is written ``ed25519:<base64>`` (one line, easy to
paste into a box's settings); a private key is a PKCS#8 PEM file.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import SignatureError

PREFIX = "ed25519:"


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_key: str  # "ed25519:<base64>"


def generate_keypair() -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return KeyPair(pem, public_key_text(key.public_key()))


def public_key_text(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode()


def load_private_key(pem: bytes):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not an unencrypted Ed25519 private key in PEM form ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the private key is not an Ed25519 key")
    return key


def parse_public_key(text: str) -> bytes:
    """``ed25519:<base64>`` (or bare base64) → the 32 raw bytes."""
    text = text.strip()
    text = text.removeprefix(PREFIX)
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise SignatureError(f"not a public key: {text[:20]!r}…") from None
    if len(raw) != 32:
        raise SignatureError("an Ed25519 public key has 32 bytes")
    return raw


def signature_document(manifest: bytes, private_pem: bytes) -> bytes:
    key = load_private_key(private_pem)
    doc = {"format": 1, "algorithm": "ed25519", "public_key": public_key_text(key.public_key()),
           "signature": base64.b64encode(key.sign(manifest)).decode()}
    return (json.dumps(doc, indent=1) + "\n").encode()


def verify_signature(manifest: bytes, signature: bytes | None,
                     trusted_keys: Iterable[str] | None = None,
                     require_signature: bool = False) -> str | None:
    """Check ``signature.json`` against the manifest bytes; returns the signer's key or None.

    A signature that is present is always checked (a broken one is refused even
    when signatures are optional). With ``require_signature`` the pack must be
    signed by one of ``trusted_keys``.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    trusted = {parse_public_key(k) for k in (trusted_keys or ())}
    if signature is None:
        if require_signature:
            raise SignatureError("the pack is not signed, and this box accepts only signed packs")
        return None
    try:
        doc = json.loads(signature.decode("utf-8"))
        if doc.get("algorithm") != "ed25519":
            raise SignatureError(f"signature.json: unsupported algorithm {doc.get('algorithm')!r}")
        raw_key = parse_public_key(doc["public_key"])
        sig = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SignatureError("signature.json is malformed") from None
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(sig, manifest)
    except InvalidSignature:
        raise SignatureError("the signature does not match manifest.json (the pack was altered "
                             "or signed with another key)") from None
    key_text = PREFIX + base64.b64encode(raw_key).decode()
    if require_signature and raw_key not in trusted:
        raise SignatureError(f"the pack is signed by {key_text}, which this box does not trust")
    return key_text


def sign_pack(pack: str | os.PathLike, private_pem: bytes) -> str:
    """Add (or replace) ``signature.json`` in a pack folder or zip; returns the public key."""
    path = Path(pack)
    if path.is_dir():
        manifest = (path / "manifest.json").read_bytes()
        doc = signature_document(manifest, private_pem)
        tmp = path / ".signature.json.tmp"
        tmp.write_bytes(doc)
        os.replace(tmp, path / "signature.json")
    else:
        with zipfile.ZipFile(path) as zf:
            manifest = zf.read("manifest.json")
            has_signature = "signature.json" in zf.namelist()
        doc = signature_document(manifest, private_pem)
        if has_signature:
            _rewrite_zip_without(path, "signature.json")
        with zipfile.ZipFile(path, "a") as zf:
            info = zipfile.ZipInfo("signature.json", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, doc)
    return json.loads(doc)["public_key"]


def _rewrite_zip_without(path: Path, name: str) -> None:
    import shutil

    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", allowZip64=True) as out:
        for info in src.infolist():
            if info.filename == name:
                continue
            with src.open(info) as f, out.open(info, "w", force_zip64=info.file_size > 2**31) as g:
                shutil.copyfileobj(f, g, 1024 * 1024)
    os.replace(tmp, path)
