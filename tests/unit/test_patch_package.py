"""The patch file format: real node packages built with dpkg-deb, patches built, signed, read and tampered with.

Tampering rewrites one ar member of a built patch (the data.tar.xz with a byte flipped, a file added or the
manifest edited; the control.tar.xz; the signature) with helpers of this file's own, independent of the
reader under test.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from debian.debfile import DebFile

from viocli import __version__
from viocli.errors import EXIT_BAD_INPUT, EXIT_REFUSED, BadInput, Refused
from viocli.patch.package import (
    PAYLOAD_ROOT,
    Manifest,
    NodePackage,
    build_patch,
    extract_payload,
    patch_file_name,
    read_patch,
)
from viocli.patch.signing import key_id, load_trusted_keys, sign, verify

NAME, VERSION = "vio-patch-1", "1.0.1"
KEYSTONE = ("python3-keystone", "2:22.0.2-0+deb12u6+viocli1")
NOVA = ("python3-nova", "2:26.2.2-1~deb12u3+viocli1")
PLAYBOOK = b"- hosts: controller\n  tasks: []\n"

# --- helpers: node packages, keys, ar and tar rewriting ----------------------------------------------


def node_package(directory: Path, package: str, version: str) -> Path:
    """A real .deb built by dpkg-deb: a control file and one file."""
    root = directory / f"src-{package}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: Test <test@localhost>\nDescription: {package} for a test\n"
    )
    (root / "usr" / "share" / "doc" / package).mkdir(parents=True)
    (root / "usr" / "share" / "doc" / package / "README").write_text(f"{package} {version}\n")
    out = directory / f"{package}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)], check=True, capture_output=True
    )
    return out


def write_keys(directory: Path, name: str, fmt: str) -> tuple[Path, Path, str]:
    """A new Ed25519 key pair in ``fmt`` ("openssh" or "pem"): (private key file, public key file, key id)."""
    key = Ed25519PrivateKey.generate()
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / name, directory / f"{name}.pub"
    if fmt == "openssh":
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
        )
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        public.write_bytes(line + b" publisher@example\n")
    else:
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private, public, key_id(key.public_key())


def ar_read(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    assert data[:8] == b"!<arch>\n"
    members, offset = [], 8
    while offset < len(data):
        header = data[offset : offset + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        members.append((name, data[offset + 60 : offset + 60 + size]))
        offset += 60 + size + size % 2
    return members


def ar_write(path: Path, members: list[tuple[str, bytes]]) -> None:
    out = bytearray(b"!<arch>\n")
    for name, content in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(content):<10}`\n".encode()
        out += content + (b"\n" if len(content) % 2 else b"")
    path.write_bytes(bytes(out))


def rewrite_member(path: Path, name: str, change: Callable[[bytes], bytes | None]) -> None:
    """Replace ar member ``name`` of ``path`` by ``change(content)``; None drops the member."""
    members = []
    for member, content in ar_read(path):
        if member == name:
            new = change(content)
            if new is None:
                continue
            content = new
        members.append((member, content))
    ar_write(path, members)


def rewrite_tar(member: str, change: Callable[[dict[str, bytes | None]], None]) -> Callable[[bytes], bytes]:
    """A member rewriter for a tar.xz: ``change`` edits {name: content (None for a directory)} in place."""

    def rewrite(data: bytes) -> bytes:
        entries: dict[str, bytes | None] = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for info in tar:
                entries[info.name] = tar.extractfile(info).read() if info.isreg() else None
        change(entries)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:xz", format=tarfile.GNU_FORMAT) as tar:
            for name, content in entries.items():
                info = tarfile.TarInfo(name)
                if content is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.size, info.mode = len(content), 0o644
                    tar.addfile(info, io.BytesIO(content))
        return out.getvalue()

    return rewrite


def payload(name: str, version: str = VERSION) -> str:
    return f"./{PAYLOAD_ROOT}/{NAME}/{version}/{name}"


def edit_data(path: Path, change: Callable[[dict[str, bytes | None]], None]) -> None:
    rewrite_member(path, "data.tar.xz", rewrite_tar("data.tar.xz", change))


def edit_manifest(path: Path, change: Callable[[dict], None]) -> None:
    def edit(entries: dict[str, bytes | None]) -> None:
        document = json.loads(entries[payload("manifest.json")])
        change(document)
        entries[payload("manifest.json")] = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"

    edit_data(path, edit)


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def debs(tmp_path: Path) -> list[Path]:
    return [node_package(tmp_path / "debs", *KEYSTONE), node_package(tmp_path / "debs", *NOVA)]


@pytest.fixture
def build(tmp_path: Path, debs: list[Path]):
    """Build a patch into tmp_path/out with sensible arguments; keyword arguments override them."""
    playbook = tmp_path / "playbook.yml"
    playbook.write_bytes(PLAYBOOK)

    def make(**overrides) -> Path:
        arguments = {
            "name": NAME,
            "version": VERSION,
            "type": "openstack",
            "description": "Keystone and Nova fixes\nSecond line of the description.",
            "roles": ["controller"],
            "packages": debs,
            "restart": ["keystone", "nova"],
            "playbook": playbook,
        }
        arguments.update(overrides)
        return build_patch(tmp_path / "out", **arguments)

    return make


@pytest.fixture
def trusted(tmp_path: Path) -> tuple[Path, Path, str]:
    """(private key, trusted-keys directory, key id) of a publisher whose OpenSSH public key is trusted."""
    private, public, identity = write_keys(tmp_path / "keys", "publisher", "openssh")
    directory = tmp_path / "trusted-keys"
    directory.mkdir()
    (directory / "publisher.pub").write_bytes(public.read_bytes())
    return private, directory, identity


def refused(error: pytest.ExceptionInfo) -> str:
    assert isinstance(error.value, Refused) and error.value.exit_code == EXIT_REFUSED
    assert error.value.hint
    return error.value.message


def bad(error: pytest.ExceptionInfo) -> str:
    assert isinstance(error.value, BadInput) and error.value.exit_code == EXIT_BAD_INPUT
    assert error.value.hint
    return error.value.message


# --- building and reading ----------------------------------------------------------------------------


def test_round_trip(build, debs: list[Path]) -> None:
    path = build()
    assert path.name == "vio-patch-1_1.0.1_all.deb"
    patch = read_patch(path, trusted_keys=path.parent / "none", allow_unsigned=True)
    manifest = patch.manifest
    assert (patch.path, patch.signed_by, patch.size, patch.key) == (
        path,
        None,
        path.stat().st_size,
        "vio-patch-1_1.0.1",
    )
    assert (manifest.name, manifest.version, manifest.type) == (NAME, VERSION, "openstack")
    assert manifest.description == "Keystone and Nova fixes\nSecond line of the description."
    assert manifest.roles == ("controller",)
    assert manifest.restart == ("keystone", "nova")
    assert manifest.playbook == "playbook.yml"
    assert manifest.playbook_sha256 == hashlib.sha256(PLAYBOOK).hexdigest()
    assert manifest.min_viocli_version == __version__
    assert manifest.packages == tuple(
        NodePackage(deb.name, package, version, hashlib.sha256(deb.read_bytes()).hexdigest(), deb.stat().st_size)
        for deb, (package, version) in zip(debs, (KEYSTONE, NOVA), strict=True)
    )
    assert manifest.packages[0].file == "python3-keystone_2%3a22.0.2-0+deb12u6+viocli1_all.deb"


def test_dpkg_and_python_debian_read_the_patch(build, trusted) -> None:
    private, _, _ = trusted
    path = build(signing_key=private)
    info = subprocess.run(["dpkg-deb", "-I", str(path)], check=True, capture_output=True, text=True)
    assert "Package: vio-patch-1" in info.stdout and "X-Viocli-Patch-Type: openstack" in info.stdout
    assert "Section: admin" in info.stdout and "Priority: optional" in info.stdout
    assert " Second line of the description." in info.stdout
    assert info.stderr == ""
    listing = subprocess.run(["dpkg-deb", "-c", str(path)], check=True, capture_output=True, text=True)
    assert payload("manifest.json") in listing.stdout
    assert payload("playbook.yml") in listing.stdout
    assert payload("packages/python3-nova_2%3a26.2.2-1~deb12u3+viocli1_all.deb") in listing.stdout
    assert listing.stderr == ""
    deb = DebFile(str(path))
    assert deb.debcontrol()["Version"] == VERSION
    assert payload("manifest.json") in deb.data.tgz().getnames()


def test_patch_file_name_keeps_an_epoch_as_apt_does(build) -> None:
    assert patch_file_name("vio-patch-1", "2:1.0-1") == "vio-patch-1_2%3a1.0-1_all.deb"
    path = build(version="2:1.0-1", type="infra")
    assert path.name == "vio-patch-1_2%3a1.0-1_all.deb"
    patch = read_patch(path, allow_unsigned=True)
    assert (patch.key, patch.manifest.type) == ("vio-patch-1_2:1.0-1", "infra")


def test_a_patch_with_no_playbook(build) -> None:
    patch = read_patch(build(playbook=None, restart=()), allow_unsigned=True)
    assert (patch.manifest.playbook, patch.manifest.playbook_sha256, patch.manifest.restart) == (None, None, ())


@pytest.mark.parametrize("fmt", ["openssh", "pem"])
def test_a_signed_patch_verifies_with_a_trusted_key(build, tmp_path: Path, fmt: str) -> None:
    private, public, identity = write_keys(tmp_path / "keys", "signer", fmt)
    directory = tmp_path / "trusted-keys"
    directory.mkdir()
    (directory / f"vendor-{fmt}.pub").write_bytes(public.read_bytes())
    write_keys(directory, "other", "pem")[0].unlink()  # another trusted key beside it
    assert set(load_trusted_keys(directory)) >= {identity}
    patch = read_patch(build(signing_key=private), trusted_keys=directory)
    assert patch.signed_by == f"vendor-{fmt}.pub"
    # allow_unsigned does not skip the check of a signature that is there
    assert read_patch(patch.path, trusted_keys=directory, allow_unsigned=True).signed_by == f"vendor-{fmt}.pub"


def test_signature_member_content(tmp_path: Path) -> None:
    private, public, identity = write_keys(tmp_path, "k", "openssh")
    member = sign(b"{}\n", private)
    document = json.loads(member)
    assert document["key"] == identity and len(identity) == 16
    assert len(base64.b64decode(document["signature"])) == 64
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "k.pub").write_bytes(public.read_bytes())
    assert verify(b"{}\n", member, tmp_path / "trusted") == "k.pub"
    with pytest.raises(BadInput) as error:
        verify(b"{ }\n", member, tmp_path / "trusted")
    assert "changed after it was signed" in bad(error)


# --- refusals (exit 4) -----------------------------------------------------------------------------------


def test_unsigned_is_refused_unless_allowed(build, trusted) -> None:
    path = build()
    with pytest.raises(Refused) as error:
        read_patch(path, trusted_keys=trusted[1])
    assert refused(error) == f"{path} is not signed; add --allow-unsigned to accept it"
    assert read_patch(path, trusted_keys=trusted[1], allow_unsigned=True).signed_by is None


def test_a_key_not_in_the_trusted_directory_is_refused(build, trusted, tmp_path: Path) -> None:
    _, directory, _ = trusted
    stranger, _, identity = write_keys(tmp_path / "stranger", "stranger", "pem")
    path = build(signing_key=stranger)
    for allow_unsigned in (False, True):
        with pytest.raises(Refused) as error:
            read_patch(path, trusted_keys=directory, allow_unsigned=allow_unsigned)
        message = refused(error)
        assert str(path) in message and identity in message and str(directory) in message
        assert identity in error.value.hint


def test_a_missing_trusted_directory_is_refused(build, trusted, tmp_path: Path) -> None:
    path = build(signing_key=trusted[0])
    with pytest.raises(Refused) as error:
        read_patch(path, trusted_keys=tmp_path / "nowhere")
    message = refused(error)
    assert trusted[2] in message and f"{tmp_path / 'nowhere'} does not exist" in message


def test_a_patch_for_a_newer_viocli_is_refused(build) -> None:
    path = build(min_viocli_version="99.0")
    with pytest.raises(Refused) as error:
        read_patch(path, allow_unsigned=True)
    assert f"needs viocli >= 99.0, this is {__version__}" in refused(error)


# --- damaged or tampered patches (exit 2) ------------------------------------------------------------------


def test_manifest_edited_after_signing(build, trusted) -> None:
    private, directory, identity = trusted
    path = build(signing_key=private)
    edit_manifest(path, lambda document: document.update(restart=["keystone", "nova", "glance"]))
    with pytest.raises(BadInput) as error:
        read_patch(path, trusted_keys=directory)
    message = bad(error)
    assert str(path) in message and identity in message and "changed after it was signed" in message


def test_a_signature_naming_a_trusted_key_but_made_by_another(build, trusted, tmp_path: Path) -> None:
    _, directory, identity = trusted
    forger, _, _ = write_keys(tmp_path / "forger", "forger", "openssh")
    path = build(signing_key=forger)

    def claim_trusted_key(content: bytes) -> bytes:
        return json.dumps({**json.loads(content), "key": identity}).encode()

    rewrite_member(path, "_viocli-sig", claim_trusted_key)
    with pytest.raises(BadInput) as error:
        read_patch(path, trusted_keys=directory)
    assert "does not match manifest.json" in bad(error)


def test_a_garbled_signature(build, trusted) -> None:
    path = build(signing_key=trusted[0])
    rewrite_member(path, "_viocli-sig", lambda content: b"not json")
    with pytest.raises(BadInput) as error:
        read_patch(path, trusted_keys=trusted[1])
    assert "the signature is not JSON" in bad(error)


def test_a_flipped_byte_in_a_node_package(build, debs: list[Path]) -> None:
    path = build()
    name = f"packages/{debs[1].name}"

    def flip(entries: dict[str, bytes | None]) -> None:
        data = bytearray(entries[payload(name)])
        data[len(data) // 2] ^= 0x01
        entries[payload(name)] = bytes(data)

    edit_data(path, flip)
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    message = bad(error)
    assert str(path) in message and f"{name} checksum mismatch" in message


def test_a_node_package_of_another_size(build, debs: list[Path]) -> None:
    path = build()
    name = payload(f"packages/{debs[0].name}")
    edit_data(path, lambda entries: entries.update({name: entries[name] + b"x"}))
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    size = debs[0].stat().st_size
    assert f"packages/{debs[0].name} is {size + 1} bytes, the manifest says {size}" in bad(error)


def test_a_changed_playbook(build) -> None:
    path = build()
    edit_data(path, lambda entries: entries.update({payload("playbook.yml"): b"- hosts: all\n"}))
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert "playbook.yml checksum mismatch" in bad(error)


@pytest.mark.parametrize(
    "extra",
    [payload("packages/evil_1.0_all.deb"), payload("notes.txt"), "./etc/cron.d/evil", "./usr/share/viocli/x"],
)
def test_an_extra_payload_file_is_refused(build, extra: str) -> None:
    path = build()
    edit_data(path, lambda entries: entries.update({extra: b"surprise\n"}))
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert f"holds {extra.removeprefix('./')}, which is not in the manifest" in bad(error)


def test_a_symlink_in_the_payload_is_refused(build) -> None:
    path = build()

    def add_symlink(data: bytes) -> bytes:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:xz") as tar:
            members = [(info, tar.extractfile(info).read() if info.isreg() else None) for info in tar]
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:xz", format=tarfile.GNU_FORMAT) as tar:
            for info, content in members:
                tar.addfile(info, io.BytesIO(content) if content is not None else None)
            link = tarfile.TarInfo(payload("packages/link.deb"))
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
            tar.addfile(link)
        return out.getvalue()

    rewrite_member(path, "data.tar.xz", add_symlink)
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert "not a regular file or directory" in bad(error)


def test_a_missing_payload_file_is_refused(build, debs: list[Path]) -> None:
    path = build()
    edit_data(path, lambda entries: entries.pop(payload(f"packages/{debs[0].name}")))
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert f"packages/{debs[0].name} is in the manifest but missing" in bad(error)


def test_a_node_package_that_is_not_what_its_entry_says(build, debs: list[Path]) -> None:
    path = build()

    def other_version(document: dict) -> None:
        document["packages"][0]["version"] = "2:22.0.2-0+deb12u7"

    edit_manifest(path, other_version)
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    message = bad(error)
    assert f"packages/{debs[0].name} is python3-keystone 2:22.0.2-0+deb12u6+viocli1" in message
    assert "the manifest says python3-keystone 2:22.0.2-0+deb12u7" in message


def test_a_node_package_that_is_not_a_deb(build, tmp_path: Path) -> None:
    fake = tmp_path / "fake_1.0_all.deb"
    fake.write_bytes(b"not a package")
    with pytest.raises(BadInput) as error:
        build(packages=[fake])
    assert f"{fake}: not a Debian package" in bad(error)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Version", "1.0.2", "the control file's Version is '1.0.2', the manifest says '1.0.1'"),
        ("Package", "vio-patch-2", "the control file's Package is 'vio-patch-2', the manifest says 'vio-patch-1'"),
        ("X-Viocli-Patch-Type", "infra", "X-Viocli-Patch-Type is 'infra', the manifest says 'openstack'"),
    ],
)
def test_control_file_must_match_the_manifest(build, field: str, value: str, expected: str) -> None:
    path = build()

    def edit(entries: dict[str, bytes | None]) -> None:
        lines = entries["./control"].decode().splitlines(keepends=True)
        entries["./control"] = "".join(
            f"{field}: {value}\n" if line.startswith(f"{field}:") else line for line in lines
        ).encode()

    rewrite_member(path, "control.tar.xz", rewrite_tar("control.tar.xz", edit))
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert expected in bad(error)


def test_not_an_ar_archive(tmp_path: Path) -> None:
    path = tmp_path / "vio-patch-1_1.0.1_all.deb"
    path.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert f"{path}: not a Debian package (not an ar archive)" in bad(error)
    with pytest.raises(BadInput) as error:
        read_patch(tmp_path / "absent.deb", allow_unsigned=True)
    assert "cannot read the patch" in bad(error)


@pytest.mark.parametrize(
    ("member", "expected"),
    [("data.tar.xz", "no data.tar member"), ("control.tar.xz", "no control.tar member"), ("debian-binary", "first")],
)
def test_a_missing_member(build, member: str, expected: str) -> None:
    path = build()
    rewrite_member(path, member, lambda content: None)
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert expected in bad(error)


def test_a_truncated_patch(build) -> None:
    path = build()
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert "truncated" in bad(error)


def test_a_bad_manifest_in_a_patch_names_the_field(build) -> None:
    path = build()
    edit_manifest(path, lambda document: document.update(roles=["controller", "toaster"]))
    with pytest.raises(BadInput) as error:
        read_patch(path, allow_unsigned=True)
    assert bad(error).startswith(f"{path}: manifest.json: roles: 'toaster' is not a role")


# --- the manifest's rules ----------------------------------------------------------------------------------

GOOD = {
    "format": 1,
    "name": "vio-patch-1",
    "version": "1.0.1",
    "type": "openstack",
    "description": "fixes",
    "roles": ["controller"],
    "packages": [
        {
            "file": "python3-keystone_2%3a22.0.2-0+deb12u6+viocli1_all.deb",
            "package": "python3-keystone",
            "version": "2:22.0.2-0+deb12u6+viocli1",
            "sha256": "a" * 64,
            "size": 123,
        }
    ],
    "restart": ["keystone"],
    "playbook": None,
    "playbook_sha256": None,
    "min_viocli_version": "0.1.0",
}


def test_manifest_json_is_canonical() -> None:
    manifest = Manifest.from_json(json.dumps(GOOD).encode(), "m")
    data = manifest.to_json()
    assert data == json.dumps(GOOD, indent=2, sort_keys=True).encode() + b"\n"
    assert Manifest.from_json(data, "m") == manifest


def _package(**changes) -> list[dict]:
    return [{**GOOD["packages"][0], **changes}]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"format": 2}, "format"),
        ({"format": 1.0}, "format"),
        ({"name": "Vio_Patch"}, "name"),
        ({"name": "x"}, "name"),
        ({"version": "1.0 beta"}, "version"),
        ({"version": "1.0:2"}, "version"),
        ({"version": "v1"}, "version"),
        ({"type": "firmware"}, "type"),
        ({"description": ""}, "description"),
        ({"roles": []}, "roles"),
        ({"roles": ["controller", "controller"]}, "roles"),
        ({"roles": "controller"}, "roles"),
        ({"restart": ["no-such-service"]}, "restart"),
        ({"packages": _package(file="../etc/passwd.deb")}, "packages[0].file"),
        ({"packages": _package(file="sub/dir.deb")}, "packages[0].file"),
        ({"packages": _package(file="keystone.tar")}, "packages[0].file"),
        ({"packages": _package(package="Keystone")}, "packages[0].package"),
        ({"packages": _package(version="")}, "packages[0].version"),
        ({"packages": _package(sha256="ABC")}, "packages[0].sha256"),
        ({"packages": _package(size=-1)}, "packages[0].size"),
        ({"packages": _package(size=True)}, "packages[0].size"),
        ({"packages": [{"file": "x.deb"}]}, "packages[0]"),
        ({"packages": GOOD["packages"] * 2}, "packages"),
        ({"packages": []}, "packages"),
        ({"playbook": "site.yml", "playbook_sha256": "b" * 64}, "playbook"),
        ({"playbook": "playbook.yml"}, "playbook_sha256"),
        ({"playbook_sha256": "b" * 64}, "playbook_sha256"),
        ({"min_viocli_version": "soon"}, "min_viocli_version"),
        ({"extra": 1}, "extra"),
    ],
)
def test_manifest_rules(changes: dict, field: str) -> None:
    document = {**GOOD, **changes}
    with pytest.raises(BadInput) as error:
        Manifest.from_json(json.dumps(document).encode(), "x.deb: manifest.json")
    assert bad(error).startswith(f"x.deb: manifest.json: {field}: ")


def test_manifest_missing_field_and_not_json() -> None:
    document = {key: value for key, value in GOOD.items() if key != "roles"}
    with pytest.raises(BadInput) as error:
        Manifest.from_json(json.dumps(document).encode(), "origin")
    assert bad(error) == "origin: roles: missing"
    with pytest.raises(BadInput) as error:
        Manifest.from_json(b"{", "origin")
    assert bad(error).startswith("origin: not JSON")


def test_build_refuses_what_the_reader_would(build, tmp_path: Path) -> None:
    with pytest.raises(BadInput) as error:
        build(roles=["controller", "kitchen"])
    assert "roles: 'kitchen' is not a role" in bad(error)
    with pytest.raises(BadInput) as error:
        build(version="1.0_1")
    assert "version:" in bad(error)
    assert not (tmp_path / "out").exists()


# --- trusted keys ----------------------------------------------------------------------------------------


def test_a_file_in_the_trusted_directory_that_is_not_a_key(trusted) -> None:
    _, directory, _ = trusted
    (directory / "README").write_text("put keys here\n")
    with pytest.raises(BadInput) as error:
        load_trusted_keys(directory)
    assert f"trusted key {directory / 'README'}: not an OpenSSH or PEM public key" in bad(error)


def test_an_rsa_key_in_the_trusted_directory(trusted, tmp_path: Path) -> None:
    _, directory, _ = trusted
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", str(tmp_path / "rsa")], check=True)
    (directory / "rsa.pub").write_bytes((tmp_path / "rsa.pub").read_bytes())
    with pytest.raises(BadInput) as error:
        load_trusted_keys(directory)
    assert "rsa.pub: an RSA key, not Ed25519" in bad(error)


def test_trusted_keys_remember_their_files(trusted) -> None:
    _, directory, identity = trusted
    keys = load_trusted_keys(directory)
    assert list(keys) == [identity]
    assert keys.files == {identity: "publisher.pub"}


# --- extraction ----------------------------------------------------------------------------------------------


def test_extract_payload_writes_the_files(build, debs: list[Path], tmp_path: Path) -> None:
    patch = read_patch(build(), allow_unsigned=True)
    dest = extract_payload(patch, tmp_path / "work" / "payload")
    assert dest == tmp_path / "work" / "payload"
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == sorted(
        ["manifest.json", "playbook.yml", "packages", *(f"packages/{deb.name}" for deb in debs)]
    )
    for deb in debs:
        assert (dest / "packages" / deb.name).read_bytes() == deb.read_bytes()
    assert (dest / "playbook.yml").read_bytes() == PLAYBOOK
    assert Manifest.from_json((dest / "manifest.json").read_bytes(), "x") == patch.manifest


def test_extract_payload_checks_the_files_again(build, debs: list[Path], tmp_path: Path) -> None:
    patch = read_patch(build(), allow_unsigned=True)
    name = payload(f"packages/{debs[1].name}")
    flipped = {name: lambda data: data[:-1] + bytes([data[-1] ^ 0xFF])}  # a byte that surely changes
    edit_data(patch.path, lambda entries: entries.update({name: flipped[name](entries[name])}))
    with pytest.raises(BadInput) as error:
        extract_payload(patch, tmp_path / "payload")
    assert f"packages/{debs[1].name} checksum mismatch" in bad(error)
    assert not (tmp_path / "payload" / "packages" / debs[1].name).exists()
