"""A patch's signature: Ed25519 over the exact bytes of its ``manifest.json``, and the trusted keys.

The manifest lists the SHA-256 and size of every other payload file, so a signature over it covers the
whole payload. The signature travels in the patch as an extra ar member (after ``data.tar``; dpkg skips
members whose name starts with ``_``, as it does dpkg-sig's) holding JSON::

    {"key": "<key id>", "signature": "<base64 Ed25519 signature of manifest.json>"}

A key id is the first 16 hex digits of the SHA-256 of the raw 32-byte public key. The trusted keys are
the files of one directory (``/etc/viocli/trusted-keys`` by default), each an OpenSSH
``ssh-ed25519 AAAA... comment`` line or a PEM public key; a file there that is not an Ed25519 public key
is an error, never skipped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from viocli.errors import BadInput, Refused

DEFAULT_TRUSTED_KEYS = Path("/etc/viocli/trusted-keys")
KEY_ID_LENGTH = 16


class TrustedKeys(dict[str, Ed25519PublicKey]):
    """Key id -> public key, with the directory they were read from and each key's file name."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.files: dict[str, str] = {}  # key id -> file name in ``directory``


def key_id(public_key: Ed25519PublicKey) -> str:
    """The id of ``public_key``: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_LENGTH]


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in ``path`` (OpenSSH line or PEM); BadInput naming the file otherwise."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInput(
            f"trusted key {path}: cannot be read ({error.strerror})", hint="fix its permissions or remove it"
        ) from None
    text = data.strip()
    if b"PRIVATE KEY" in text:
        raise BadInput(
            f"trusted key {path}: a private key",
            hint="remove it at once and put only public keys in the trusted-keys directory",
        )
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = serialization.load_ssh_public_key(text)
    except (ValueError, UnsupportedAlgorithm):
        raise BadInput(
            f"trusted key {path}: not an OpenSSH or PEM public key",
            hint="put only Ed25519 public keys ('ssh-ed25519 AAAA...' or PEM) in the trusted-keys directory",
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(
            f"trusted key {path}: {_kind(key)} key, not Ed25519",
            hint="viocli patches are signed with Ed25519 keys: put only those in the trusted-keys directory",
        )
    return key


def load_trusted_keys(directory: Path) -> TrustedKeys:
    """Every key in ``directory`` by key id (a missing directory gives none); ``.files`` names their files.

    Every file of the directory must be an Ed25519 public key (BadInput naming the file otherwise);
    subdirectories are not read. When two files hold the same key, the first by name is remembered.
    """
    trusted = TrustedKeys(directory)
    if not directory.exists():
        return trusted
    if not directory.is_dir():
        raise BadInput(f"trusted keys {directory}: not a directory", hint="make it a directory of public key files")
    for path in sorted(directory.iterdir()):
        if path.is_dir():
            continue
        key = load_public_key(path)
        identity = key_id(key)
        if identity not in trusted:
            trusted[identity] = key
            trusted.files[identity] = path.name
    return trusted


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The unencrypted Ed25519 private key in ``path`` (OpenSSH or PEM); BadInput naming the file otherwise."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInput(f"signing key {path}: cannot be read ({error.strerror})", hint="check the path") from None
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # the key is encrypted and no password was given
        raise BadInput(
            f"signing key {path}: encrypted", hint="sign with an unencrypted copy of the key (ssh-keygen -p -N '')"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise BadInput(
            f"signing key {path}: not an OpenSSH or PEM private key",
            hint="generate one with: ssh-keygen -t ed25519 -N '' -f <file>",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(
            f"signing key {path}: {_kind(key)} key, not Ed25519",
            hint="generate one with: ssh-keygen -t ed25519 -N '' -f <file>",
        )
    return key


def sign(manifest_bytes: bytes, private_key_path: Path) -> bytes:
    """The signature member's content: ``manifest_bytes`` signed with the key in ``private_key_path``."""
    key = load_private_key(private_key_path)
    document = {
        "key": key_id(key.public_key()),
        "signature": base64.b64encode(key.sign(manifest_bytes)).decode("ascii"),
    }
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def parse_signature(signature_member: bytes, origin: str) -> tuple[str, bytes]:
    """(key id, raw signature) of a signature member; BadInput naming ``origin`` when it is not one."""
    hint = "the patch is damaged: get it again from where it was published"
    try:
        document = json.loads(signature_member)
    except ValueError as error:
        raise BadInput(f"{origin}: the signature is not JSON ({error})", hint=hint) from None
    if not isinstance(document, dict) or set(document) != {"key", "signature"}:
        raise BadInput(f"{origin}: the signature must be an object with 'key' and 'signature' only", hint=hint)
    identity, encoded = document["key"], document["signature"]
    if not isinstance(identity, str) or len(identity) != KEY_ID_LENGTH or not _is_hex(identity):
        raise BadInput(f"{origin}: the signature's key {identity!r} is not a key id (16 hex digits)", hint=hint)
    try:
        raw = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        raise BadInput(f"{origin}: the signature is not a base64 Ed25519 signature (64 bytes)", hint=hint)
    return identity, raw


def verify(manifest_bytes: bytes, signature_member: bytes, trusted: Path, *, origin: str = "patch") -> str:
    """Check ``signature_member`` over ``manifest_bytes``; return the file name of the trusted key that made it.

    ``origin`` (the patch file) starts every message. Refused when the signing key is not in the
    ``trusted`` directory (or there is no such directory); BadInput when the signature does not verify
    against the key it names (the manifest or the signature was changed after signing).
    """
    identity, raw = parse_signature(signature_member, origin)
    keys = load_trusted_keys(trusted)
    if identity not in keys:
        where = f"not in {trusted}" if trusted.is_dir() else f"not trusted: {trusted} does not exist"
        raise Refused(
            f"{origin}: signed by key {identity}, {where}",
            hint=f"if you trust the publisher, put their Ed25519 public key (id {identity}) in {trusted}",
        )
    try:
        keys[identity].verify(raw, manifest_bytes)
    except InvalidSignature:
        raise BadInput(
            f"{origin}: the signature by key {identity} ({keys.files[identity]}) does not match manifest.json: "
            "the patch was changed after it was signed",
            hint="do not use this patch: get it again from where it was published",
        ) from None
    return keys.files[identity]


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _kind(key: object) -> str:
    """ "an RSA", "an EllipticCurve"...: the algorithm of a key that is not Ed25519."""
    for base in type(key).__mro__:
        for suffix in ("PrivateKey", "PublicKey"):
            if base.__name__.endswith(suffix) and base.__name__ != suffix:
                name = base.__name__.removesuffix(suffix).lstrip("_")
                return f"{'an' if name[:1] in 'AEIOUR' else 'a'} {name}"
    return "another kind of"
