"""The patch file: a Debian package ``<name>_<version>_all.deb``, as VMware's viopatch shipped them.

A patch is an ordinary ``.deb`` (``dpkg-deb -I``/``-c`` read it) with members, in order:

- ``debian-binary`` (``2.0``);
- ``control.tar.xz`` whose ``control`` names the patch (Package, Version, Architecture ``all``) and its
  type in ``X-Viocli-Patch-Type`` (``infra`` or ``openstack``);
- ``data.tar.xz`` whose payload sits under ``usr/share/viocli/patches/<name>/<version>/``:
  ``manifest.json``, ``packages/<file>.deb`` (the packages installed on the nodes) and, optionally,
  ``playbook.yml``;
- optionally ``_viocli-sig``, the signature (see :mod:`viocli.patch.signing`); dpkg skips members whose
  name starts with ``_``. (An ar member name holds 16 characters at most.)

``manifest.json`` says what the patch does and lists the SHA-256 and size of every other payload file,
so the signature over it covers the whole payload. Reading a patch checks everything in memory (nothing
is extracted to disk): the structure, the manifest's rules, every payload file against the manifest
(none missing, none extra), each node package's own control against its entry, the control file against
the manifest, the signature, and the viocli version the patch needs.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import re
import tarfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debian.deb822 import Deb822
from debian.debfile import DebFile

from viocli import __version__
from viocli.atomic import write_atomic
from viocli.errors import BadInput, Refused
from viocli.inventory.modes import ROLES
from viocli.patch.signing import DEFAULT_TRUSTED_KEYS, sign, verify

try:
    from packaging.version import InvalidVersion
    from packaging.version import Version as _ViocliVersion
except ImportError:  # pragma: no cover - packaging comes with ansible-core
    from debian.debian_support import Version as _ViocliVersion

    InvalidVersion = ValueError  # type: ignore[assignment,misc]

FORMAT = 1
PATCH_TYPES = ("infra", "openstack")
PAYLOAD_ROOT = "usr/share/viocli/patches"
MANIFEST_FILE = "manifest.json"
PLAYBOOK_FILE = "playbook.yml"
PACKAGES_DIR = "packages"
SIGNATURE_MEMBER = "_viocli-sig"
TYPE_FIELD = "X-Viocli-Patch-Type"
MAINTAINER = "viocli <root@localhost>"

_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_VERSION = re.compile(r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_COMPRESSIONS = ("", ".gz", ".xz")

_DAMAGED = "the patch is damaged or was changed: get it again from where it was published"
_REBUILD = "the patch was not built right: rebuild it with viocli's patch builder"
_FIELDS = (
    "format",
    "name",
    "version",
    "type",
    "description",
    "roles",
    "packages",
    "restart",
    "playbook",
    "playbook_sha256",
    "min_viocli_version",
)
_PACKAGE_FIELDS = ("file", "package", "version", "sha256", "size")
_Problem = Callable[[str], BadInput]  # makes the error for a problem with one field


@dataclass(frozen=True)
class NodePackage:
    """A Debian package the patch installs on nodes: its file under ``packages/`` and what it must be."""

    file: str
    package: str
    version: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` (format 1) says about a patch."""

    name: str
    version: str
    type: str
    description: str
    roles: tuple[str, ...]
    packages: tuple[NodePackage, ...]
    restart: tuple[str, ...]
    playbook: str | None
    playbook_sha256: str | None
    min_viocli_version: str

    def to_json(self) -> bytes:
        """The manifest's canonical bytes: sorted keys, indent 2, a trailing newline."""
        document = {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "description": self.description,
            "roles": list(self.roles),
            "packages": [
                {"file": p.file, "package": p.package, "version": p.version, "sha256": p.sha256, "size": p.size}
                for p in self.packages
            ],
            "restart": list(self.restart),
            "playbook": self.playbook,
            "playbook_sha256": self.playbook_sha256,
            "min_viocli_version": self.min_viocli_version,
        }
        return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes, origin: str) -> Manifest:
        """Parse and check ``manifest.json``; BadInput naming ``origin`` and the field on any problem."""

        def bad(field: str, problem: str) -> BadInput:
            return BadInput(f"{origin}: {field}: {problem}", hint=_REBUILD)

        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadInput(f"{origin}: not JSON ({error})", hint=_DAMAGED) from None
        if not isinstance(raw, dict):
            raise BadInput(f"{origin}: not a JSON object", hint=_DAMAGED)
        for field in _FIELDS:
            if field not in raw:
                raise bad(field, "missing")
        for field in raw:
            if field not in _FIELDS:
                raise bad(field, "unknown field (this viocli reads manifest format 1)")
        if type(raw["format"]) is not int or raw["format"] != FORMAT:
            raise bad("format", f"{raw['format']!r}, this viocli reads format {FORMAT} only")
        name = _check_name(raw["name"], lambda problem: bad("name", problem))
        version = _check_version(raw["version"], lambda problem: bad("version", problem))
        kind = raw["type"]
        if kind not in PATCH_TYPES:
            raise bad("type", f"{kind!r} is not one of {', '.join(PATCH_TYPES)}")
        description = raw["description"]
        if not isinstance(description, str) or not description.strip():
            raise bad("description", "must be a non-empty string")
        roles = _string_list(raw["roles"], lambda problem: bad("roles", problem))
        if not roles:
            raise bad("roles", f"empty; name at least one of {', '.join(ROLES)}")
        for role in roles:
            if role not in ROLES:
                raise bad("roles", f"{role!r} is not a role (one of {', '.join(ROLES)})")
        packages = _check_packages(raw["packages"], bad)
        restart = _string_list(raw["restart"], lambda problem: bad("restart", problem))
        services = _service_names() if restart else ()
        for service in restart:
            if service not in services:
                raise bad("restart", f"{service!r} is not a service (one of {', '.join(services)})")
        playbook, playbook_sha256 = raw["playbook"], raw["playbook_sha256"]
        if playbook is None:
            if playbook_sha256 is not None:
                raise bad("playbook_sha256", "set, but there is no playbook")
        else:
            if playbook != PLAYBOOK_FILE:
                raise bad("playbook", f"{playbook!r}: the playbook must be {PLAYBOOK_FILE!r} (or null)")
            if not isinstance(playbook_sha256, str) or not _SHA256.fullmatch(playbook_sha256):
                raise bad("playbook_sha256", "must be the playbook's SHA-256 (64 lowercase hex digits)")
        if not packages and playbook is None:
            raise bad("packages", "empty and there is no playbook: the patch would do nothing")
        min_version = raw["min_viocli_version"]
        try:
            if not isinstance(min_version, str):
                raise InvalidVersion(min_version)
            _ViocliVersion(min_version)
        except InvalidVersion:
            raise bad("min_viocli_version", f"{min_version!r} is not a version") from None
        return cls(
            name=name,
            version=version,
            type=kind,
            description=description,
            roles=tuple(roles),
            packages=packages,
            restart=tuple(restart),
            playbook=playbook,
            playbook_sha256=playbook_sha256,
            min_viocli_version=min_version,
        )


@dataclass(frozen=True)
class Patch:
    """A patch file that was read and checked: its manifest and the trusted key that signed it."""

    path: Path
    manifest: Manifest
    signed_by: str | None  # the trusted key file name that verified it; None if unsigned
    size: int

    @property
    def key(self) -> str:
        """``<name>_<version>``: the patch's identity."""
        return f"{self.manifest.name}_{self.manifest.version}"


def patch_file_name(name: str, version: str) -> str:
    """``<name>_<version>_all.deb``; an epoch's colon is written ``%3a`` as apt does."""
    return f"{name}_{version.replace(':', '%3a')}_all.deb"


def read_patch(path: Path, *, trusted_keys: Path = DEFAULT_TRUSTED_KEYS, allow_unsigned: bool = False) -> Patch:
    """Read and check the patch file ``path`` in memory; the Patch, or the error that stops it.

    BadInput (exit 2) when the file is not a well-formed patch: not an ar archive, a member missing, a bad
    manifest, a payload file missing, extra or not matching its checksum or size, the control file not
    matching the manifest, or a signature that does not verify (the patch was changed after signing).
    Refused (exit 4) when it is unsigned (unless ``allow_unsigned``), signed by a key that is not in
    ``trusted_keys``, or needs a newer viocli.
    """
    contents = _read_contents(path)
    manifest = contents.manifest
    origin = str(path)
    _check_control(contents.control, manifest, origin)
    _check_payload(contents, origin)
    if contents.signature is not None:
        signed_by: str | None = verify(contents.manifest_bytes, contents.signature, trusted_keys, origin=origin)
    elif allow_unsigned:
        signed_by = None
    else:
        raise Refused(
            f"{origin} is not signed; add --allow-unsigned to accept it",
            hint="accept unsigned patches only from a source you trust",
        )
    if _ViocliVersion(manifest.min_viocli_version) > _ViocliVersion(__version__):
        raise Refused(
            f"{origin}: patch {manifest.name} {manifest.version} needs viocli >= {manifest.min_viocli_version}, "
            f"this is {__version__}",
            hint=f"upgrade viocli to {manifest.min_viocli_version} or later first",
        )
    return Patch(path=path, manifest=manifest, signed_by=signed_by, size=contents.size)


def extract_payload(patch: Patch, dest: Path) -> Path:
    """Write the patch's ``manifest.json``, ``packages/*.deb`` and ``playbook.yml`` into ``dest``; return it.

    The patch file is read again and every file's SHA-256 and size checked against the manifest read
    before as it is written (BadInput if the file changed since, and nothing more is written).
    """
    contents = _read_contents(patch.path)
    origin = str(patch.path)
    if contents.manifest != patch.manifest:
        raise BadInput(f"{origin}: manifest.json changed since the patch was read", hint="read the patch again")
    expected = _expected_files(patch.manifest)
    (dest / PACKAGES_DIR).mkdir(parents=True, exist_ok=True)
    write_atomic(dest / MANIFEST_FILE, contents.manifest_bytes, 0o644)
    for name, (sha256, size) in expected.items():
        data = contents.files.get(f"{contents.root}/{name}")
        if data is None:
            raise BadInput(f"{origin}: {name} is in the manifest but not in the patch", hint=_DAMAGED)
        _check_file(name, data, sha256, size, origin)
        write_atomic(dest / name, data, 0o644)
    return dest


def build_patch(
    out_dir: Path,
    *,
    name: str,
    version: str,
    type: str,
    description: str,
    roles: Sequence[str],
    packages: Sequence[Path],
    restart: Sequence[str] = (),
    playbook: Path | None = None,
    min_viocli_version: str | None = None,
    signing_key: Path | None = None,
) -> Path:
    """Build the patch ``out_dir/<name>_<version>_all.deb`` and return its path.

    Each node package's Package and Version are read from it; its SHA-256 and size go into the manifest.
    ``signing_key`` is an unencrypted OpenSSH or PEM Ed25519 private key file; without it the patch is
    unsigned. ``min_viocli_version`` defaults to this viocli's version. BadInput on anything the reader
    would refuse.
    """
    origin = f"patch {name} {version}"
    nodes: list[NodePackage] = []
    payload: dict[str, bytes] = {}
    for source in packages:
        data = _read_input(source, "node package")
        package, package_version = _deb_identity(data, str(source))
        nodes.append(NodePackage(source.name, package, package_version, hashlib.sha256(data).hexdigest(), len(data)))
        if f"{PACKAGES_DIR}/{source.name}" in payload:
            raise BadInput(f"{origin}: two node packages are named {source.name}", hint="give each a distinct name")
        payload[f"{PACKAGES_DIR}/{source.name}"] = data
    playbook_sha256 = None
    if playbook is not None:
        data = _read_input(playbook, "playbook")
        playbook_sha256 = hashlib.sha256(data).hexdigest()
        payload[PLAYBOOK_FILE] = data
    manifest = Manifest(
        name=name,
        version=version,
        type=type,
        description=description,
        roles=tuple(roles),
        packages=tuple(nodes),
        restart=tuple(restart),
        playbook=PLAYBOOK_FILE if playbook is not None else None,
        playbook_sha256=playbook_sha256,
        min_viocli_version=min_viocli_version or __version__,
    )
    manifest_bytes = manifest.to_json()
    Manifest.from_json(manifest_bytes, f"{origin}: manifest")  # the reader's rules, before writing anything
    payload[MANIFEST_FILE] = manifest_bytes

    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    root = f"{PAYLOAD_ROOT}/{name}/{version}"
    parts = root.split("/")
    entries: list[tuple[str, bytes | None]] = [("./", None)]
    entries += [("./" + "/".join(parts[: i + 1]), None) for i in range(len(parts))]
    entries.append((f"./{root}/{MANIFEST_FILE}", manifest_bytes))
    if playbook is not None:
        entries.append((f"./{root}/{PLAYBOOK_FILE}", payload[PLAYBOOK_FILE]))
    entries.append((f"./{root}/{PACKAGES_DIR}", None))
    entries += [(f"./{root}/{PACKAGES_DIR}/{p.file}", payload[f"{PACKAGES_DIR}/{p.file}"]) for p in nodes]
    installed_kib = sum(len(data) for data in payload.values()) // 1024 + 1
    control = _control_text(manifest, installed_kib).encode("utf-8")
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", _tar_xz([("./", None), ("./control", control)], mtime)),
        ("data.tar.xz", _tar_xz(entries, mtime)),
    ]
    if signing_key is not None:
        members.append((SIGNATURE_MEMBER, sign(manifest_bytes, signing_key)))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / patch_file_name(name, version)
    write_atomic(target, ar_archive(members, mtime), 0o644)
    return target


# --- ar archives -----------------------------------------------------------------------------------


def ar_members(data: bytes, origin: str) -> list[tuple[str, bytes]]:
    """The (name, content) members of the ar archive ``data``, in order; BadInput naming ``origin`` if not one."""
    if not data.startswith(_AR_MAGIC):
        raise BadInput(
            f"{origin}: not a Debian package (not an ar archive)", hint="give the path of a patch's .deb file"
        )
    members: list[tuple[str, bytes]] = []
    offset = len(_AR_MAGIC)
    while offset < len(data):
        header = data[offset : offset + _AR_HEADER]
        if len(header) < _AR_HEADER or header[58:60] != b"`\n":
            raise BadInput(f"{origin}: ar member header at byte {offset} is truncated or malformed", hint=_DAMAGED)
        name = header[:16].decode("ascii", "replace").rstrip(" ").removesuffix("/")
        try:
            size = int(header[48:58].decode("ascii"))
        except ValueError:
            raise BadInput(f"{origin}: ar member {name!r} has no valid size", hint=_DAMAGED) from None
        start = offset + _AR_HEADER
        if size < 0 or start + size > len(data):
            raise BadInput(f"{origin}: ar member {name!r} is truncated", hint=_DAMAGED)
        members.append((name, data[start : start + size]))
        offset = start + size + (size % 2)
    return members


def ar_archive(members: Sequence[tuple[str, bytes]], mtime: int = 0) -> bytes:
    """An ar archive (the common format dpkg writes: names of 16 characters at most) of ``members``."""
    out = io.BytesIO()
    out.write(_AR_MAGIC)
    for name, content in members:
        if len(name) > 16 or not name.isascii() or " " in name:
            raise ValueError(f"ar member name {name!r}: at most 16 ASCII characters, no spaces")
        header = f"{name:<16}{mtime:<12}{0:<6}{0:<6}{'100644':<8}{len(content):<10}`\n"
        out.write(header.encode("ascii"))
        out.write(content)
        if len(content) % 2:
            out.write(b"\n")
    return out.getvalue()


# --- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Contents:
    size: int
    control: Deb822
    files: dict[str, bytes]  # payload files by path under the payload directory
    directories: frozenset[str]  # every directory of data.tar, as a path from its root
    root: str  # the payload directory: usr/share/viocli/patches/<name>/<version>
    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes | None


def _read_contents(path: Path) -> _Contents:
    origin = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise BadInput(f"{origin}: cannot read the patch ({error.strerror})", hint="check the path") from None
    members = ar_members(raw, origin)
    if not members or members[0][0] != "debian-binary":
        raise BadInput(f"{origin}: not a Debian package (no debian-binary first)", hint=_DAMAGED)
    if not members[0][1].startswith(b"2."):
        raise BadInput(f"{origin}: debian-binary says {members[0][1][:16]!r}, not 2.0", hint=_DAMAGED)
    control_member = data_member = signature = None
    for name, content in members[1:]:
        if name == SIGNATURE_MEMBER:
            if signature is not None:
                raise BadInput(f"{origin}: two {SIGNATURE_MEMBER} members", hint=_DAMAGED)
            signature = content
        elif name.startswith("_"):
            continue  # dpkg skips these too (dpkg-sig's _gpgbuilder)
        elif control_member is None and name in [f"control.tar{c}" for c in _COMPRESSIONS]:
            control_member = (name, content)
        elif data_member is None and name in [f"data.tar{c}" for c in _COMPRESSIONS]:
            if control_member is None:
                raise BadInput(f"{origin}: no control.tar member before {name}: not a Debian package", hint=_DAMAGED)
            data_member = (name, content)
        else:
            raise BadInput(f"{origin}: unexpected ar member {name!r}", hint=_DAMAGED)
    if control_member is None:
        raise BadInput(f"{origin}: no control.tar member: not a Debian package", hint=_DAMAGED)
    if data_member is None:
        raise BadInput(f"{origin}: no data.tar member: not a Debian package", hint=_DAMAGED)

    control_files, _ = _read_tar(*control_member, origin)
    control_bytes = control_files.get("control")
    if control_bytes is None:
        raise BadInput(f"{origin}: {control_member[0]} holds no control file", hint=_DAMAGED)
    control = Deb822(control_bytes.decode("utf-8", "replace"))

    files, directories = _read_tar(*data_member, origin)
    pattern = re.compile(re.escape(PAYLOAD_ROOT) + r"/[^/]+/[^/]+/" + re.escape(MANIFEST_FILE))
    found = sorted(name for name in files if pattern.fullmatch(name))
    if len(found) != 1:
        where = f"{PAYLOAD_ROOT}/<name>/<version>/{MANIFEST_FILE}"
        problem = f"no {where}" if not found else f"{len(found)} manifests ({', '.join(found)})"
        raise BadInput(f"{origin}: {data_member[0]} holds {problem}", hint=_REBUILD)
    manifest_bytes = files[found[0]]
    manifest = Manifest.from_json(manifest_bytes, f"{origin}: {MANIFEST_FILE}")
    root = f"{PAYLOAD_ROOT}/{manifest.name}/{manifest.version}"
    if found[0] != f"{root}/{MANIFEST_FILE}":
        raise BadInput(
            f"{origin}: the manifest of {manifest.name} {manifest.version} is at {found[0]}, not under {root}/",
            hint=_REBUILD,
        )
    return _Contents(
        size=len(raw),
        control=control,
        files=files,
        directories=frozenset(directories),
        root=root,
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        signature=signature,
    )


def _read_tar(member: str, data: bytes, origin: str) -> tuple[dict[str, bytes], set[str]]:
    """Regular files (path -> content) and directories of a tar member; BadInput for anything else."""
    files: dict[str, bytes] = {}
    directories: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for info in tar:
                name = info.name.removeprefix("./").rstrip("/")
                if name in ("", "."):
                    continue
                if name in files or name in directories:
                    raise BadInput(f"{origin}: {member} holds {name} twice", hint=_DAMAGED)
                if info.isdir():
                    directories.add(name)
                elif info.isreg():
                    handle = tar.extractfile(info)
                    assert handle is not None
                    files[name] = handle.read()
                else:
                    raise BadInput(
                        f"{origin}: {member} holds {name}, which is not a regular file or directory",
                        hint=_REBUILD,
                    )
    except (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError) as error:
        raise BadInput(f"{origin}: {member} is not a readable tar archive ({error})", hint=_DAMAGED) from None
    return files, directories


def _expected_files(manifest: Manifest) -> dict[str, tuple[str, int | None]]:
    """Payload path (under the payload directory) -> (SHA-256, size or None) of every file but the manifest."""
    expected: dict[str, tuple[str, int | None]] = {
        f"{PACKAGES_DIR}/{p.file}": (p.sha256, p.size) for p in manifest.packages
    }
    if manifest.playbook is not None and manifest.playbook_sha256 is not None:
        expected[manifest.playbook] = (manifest.playbook_sha256, None)
    return expected


def _check_file(name: str, data: bytes, sha256: str, size: int | None, origin: str) -> None:
    if size is not None and len(data) != size:
        raise BadInput(f"{origin}: {name} is {len(data)} bytes, the manifest says {size}", hint=_DAMAGED)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BadInput(
            f"{origin}: {name} checksum mismatch: SHA-256 {actual}, the manifest says {sha256}", hint=_DAMAGED
        )


def _check_payload(contents: _Contents, origin: str) -> None:
    """Every payload file as the manifest lists it, nothing else, each node package what its entry says."""
    root = contents.root
    allowed = {"/".join(root.split("/")[: i + 1]) for i in range(len(root.split("/")))}
    allowed.add(f"{root}/{PACKAGES_DIR}")
    extra = sorted(contents.directories - allowed)
    if extra:
        raise BadInput(f"{origin}: the payload holds directory {extra[0]}/, not in the manifest", hint=_REBUILD)
    expected = _expected_files(contents.manifest)
    for name in sorted(contents.files):
        relative = name.removeprefix(f"{root}/") if name.startswith(f"{root}/") else None
        if relative != MANIFEST_FILE and relative not in expected:
            raise BadInput(f"{origin}: the payload holds {name}, which is not in the manifest", hint=_REBUILD)
    for relative, (sha256, size) in expected.items():
        data = contents.files.get(f"{root}/{relative}")
        if data is None:
            raise BadInput(f"{origin}: {relative} is in the manifest but missing from the payload", hint=_DAMAGED)
        _check_file(relative, data, sha256, size, origin)
    for node in contents.manifest.packages:
        relative = f"{PACKAGES_DIR}/{node.file}"
        package, version = _deb_identity(contents.files[f"{root}/{relative}"], f"{origin}: {relative}")
        if (package, version) != (node.package, node.version):
            raise BadInput(
                f"{origin}: {relative} is {package} {version}, the manifest says {node.package} {node.version}",
                hint=_REBUILD,
            )


def _check_control(control: Deb822, manifest: Manifest, origin: str) -> None:
    """The control file names the same patch as the manifest."""
    for field, expected in (
        ("Package", manifest.name),
        ("Version", manifest.version),
        ("Architecture", "all"),
        (TYPE_FIELD, manifest.type),
    ):
        actual = control.get(field)
        if actual is None:
            raise BadInput(f"{origin}: the control file has no {field} field", hint=_REBUILD)
        if actual != expected:
            raise BadInput(
                f"{origin}: the control file's {field} is {actual!r}, the manifest says {expected!r}",
                hint=_REBUILD,
            )


def _deb_identity(data: bytes, origin: str) -> tuple[str, str]:
    """(Package, Version) of the Debian package ``data``; BadInput naming ``origin`` when it is not one."""
    try:
        control = DebFile(fileobj=io.BytesIO(data)).debcontrol()
    except Exception as error:  # python-debian raises ArError, DebError, tarfile and decompression errors
        raise BadInput(f"{origin}: not a Debian package ({error})", hint="give a .deb built by dpkg-deb") from None
    package, version = control.get("Package"), control.get("Version")
    if not package or not version:
        raise BadInput(f"{origin}: its control file has no Package or no Version", hint="give a valid .deb")
    return package, version


# --- building --------------------------------------------------------------------------------------


def _read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise BadInput(f"{what} {path}: cannot be read ({error.strerror})", hint="check the path") from None


def _control_text(manifest: Manifest, installed_kib: int) -> str:
    lines = manifest.description.strip().splitlines()
    description = lines[0].strip() + "".join(f"\n {line.rstrip() or '.'}" for line in lines[1:])
    return (
        f"Package: {manifest.name}\n"
        f"Version: {manifest.version}\n"
        "Architecture: all\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {installed_kib}\n"
        "Section: admin\n"
        "Priority: optional\n"
        f"{TYPE_FIELD}: {manifest.type}\n"
        f"Description: {description}\n"
    )


def _tar_xz(entries: Sequence[tuple[str, bytes | None]], mtime: int) -> bytes:
    """A GNU-format tar (as dpkg-deb writes) compressed with xz: None content is a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:xz", format=tarfile.GNU_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


# --- manifest rules --------------------------------------------------------------------------------


def _service_names() -> tuple[str, ...]:
    from viocli.services import load_services

    return tuple(service.name for service in load_services())


def _check_name(value: Any, bad: _Problem) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise bad(f"{value!r} is not a Debian package name (lowercase letters, digits, '+', '-', '.')")
    return value


def _check_version(value: Any, bad: _Problem) -> str:
    from debian.debian_support import Version

    problem = f"{value!r} is not a Debian version ([epoch:]upstream[-revision]: letters, digits, '.+~-:')"
    if not isinstance(value, str) or not _VERSION.fullmatch(value) or value.endswith("-"):
        raise bad(problem)
    if ":" in value and not re.match(r"[0-9]+:", value):  # a colon only after an epoch
        raise bad(problem)
    try:
        Version(value)
    except ValueError:
        raise bad(problem) from None
    return value


def _string_list(value: Any, bad: _Problem) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad("must be a list of strings")
    _unique(value, bad)
    return value


def _unique(values: Sequence[str], bad: _Problem) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise bad(f"{value!r} is listed twice")
        seen.add(value)


def _check_packages(value: Any, bad: Callable[[str, str], BadInput]) -> tuple[NodePackage, ...]:
    if not isinstance(value, list):
        raise bad("packages", "must be a list")
    packages = []
    for index, entry in enumerate(value):
        field = f"packages[{index}]"
        if not isinstance(entry, dict) or set(entry) != set(_PACKAGE_FIELDS):
            raise bad(field, f"must be an object with exactly {', '.join(_PACKAGE_FIELDS)}")
        file = entry["file"]
        if (
            not isinstance(file, str)
            or "/" in file
            or ".." in file
            or "\\" in file
            or file.startswith(".")
            or not file.endswith(".deb")
            or not file.isprintable()
        ):
            raise bad(f"{field}.file", f"{file!r} must be a plain .deb file name (no '/', no '..')")
        package = _check_name(entry["package"], lambda problem, f=field: bad(f"{f}.package", problem))
        version = _check_version(entry["version"], lambda problem, f=field: bad(f"{f}.version", problem))
        sha256, size = entry["sha256"], entry["size"]
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise bad(f"{field}.sha256", "must be a SHA-256 (64 lowercase hex digits)")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"{field}.size", f"{size!r} is not a size in bytes")
        packages.append(NodePackage(file, package, version, sha256, size))
    _unique([p.file for p in packages], lambda problem: bad("packages", f"file {problem}"))
    _unique([p.package for p in packages], lambda problem: bad("packages", f"package {problem}"))
    return tuple(packages)
