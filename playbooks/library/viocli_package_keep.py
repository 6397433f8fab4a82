#!/usr/bin/python3
"""Ansible module: keep the installed version of packages as .deb files, rebuilt from the dpkg database.

What dpkg-repack does, with the standard library only: a patch replaces node packages, and the version it
replaces may no longer be in any archive, so before a patch installs anything the node keeps what is
installed now, to go back to it. The files come from the package's file list (``info/PKG.list``) as they
are on disk, with their owners, modes, mtimes and symlinks; the control file from its stanza in
``status``; the maintainer scripts and other control files from ``info/``. A listed file absent from disk
(deleted by an admin) is skipped and reported; a file another package diverted is taken from where the
diversion put it. ``repack()`` is a plain function too: ``bench/make-patch`` imports it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile

DOCUMENTATION = r"""
module: viocli_package_keep
short_description: Rebuild the .deb of installed packages from the dpkg database (as dpkg-repack does)
description:
  - Each package is rebuilt into C(dest) as C(PKG_VERSION_ARCH.deb) (the version without its epoch), its
    files as they are on disk with their owners and modes. An existing file of the same package and
    version is kept as it is, so a second run builds nothing.
  - A file of the package's list that is absent from disk is left out and reported in C(skipped).
  - A package that is not installed is reported in C(not_installed), not an error.
options:
  packages:
    description: Installed packages to keep (C(name) or C(name:arch)).
    type: list
    elements: str
    required: true
  dest:
    description: Directory of the .deb files; created with mode 0700 when absent.
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Keep what the patch replaces, to roll back to it
  viocli_package_keep:
    packages: [python3-keystone, keystone]
    dest: /var/lib/viocli/patches/kept/2024-001
  register: kept
"""

RETURN = r"""
kept:
  description: One entry per package, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    package: {description: The package name., type: str}
    version: {description: "The installed version, with its epoch.", type: str}
    path: {description: "The .deb file (in check mode, the one that would be built).", type: str}
    sha256: {description: "SHA-256 of the .deb (null in check mode when it is not built yet).", type: str}
    built: {description: "This run built it (in check mode: would build it).", type: bool}
    skipped: {description: "Listed files absent from disk, left out of the .deb.", type: list, elements: str}
not_installed:
  description: The packages given that are not installed (a package the patch adds); nothing kept for them.
  returned: always
  type: list
  elements: str
"""

FIELDS_DROPPED = ("Status", "Config-Version", "Conffiles", "Triggers-Pending", "Triggers-Awaited")
CONTROL_FILES = ("preinst", "postinst", "prerm", "postrm", "config", "templates", "triggers", "shlibs",
                 "symbols", "md5sums")  # fmt: skip
SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")
# dpkg's states in which the package's files are on disk
FILES_ON_DISK = ("unpacked", "half-configured", "triggers-awaited", "triggers-pending", "installed")
FIELD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):")


class RepackError(Exception):
    """The package cannot be rebuilt (not installed, no file list, dpkg-deb failed)."""


class NotInstalled(RepackError):
    """The package is not installed (or only its configuration files are)."""


# --- the dpkg database ----------------------------------------------------------------------------------
def parse_stanzas(text: str) -> list[list[tuple[str, str]]]:
    """deb822 stanzas as lists of (field, raw text of the field: its first line and continuation lines)."""
    stanzas: list[list[tuple[str, str]]] = []
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            if fields:
                stanzas.append(fields)
                fields = []
        elif line[0] in " \t" and fields:
            name, raw = fields[-1]
            fields[-1] = (name, f"{raw}\n{line}")
        else:
            found = FIELD.match(line)
            if found:
                fields.append((found.group(1), line))
    if fields:
        stanzas.append(fields)
    return stanzas


def field_value(raw: str) -> str:
    """The value of a field's first line (``Version: 1.0`` -> ``1.0``)."""
    return raw.split("\n", 1)[0].split(":", 1)[1].strip()


def _first(fields: list[tuple[str, str]], name: str) -> str | None:
    for field, raw in fields:
        if field.lower() == name.lower():
            return raw
    return None


def native_architecture(root: str) -> str | None:
    """The root's native architecture: the first line of ``var/lib/dpkg/arch``, else dpkg's own."""
    try:
        with open(os.path.join(root, "var/lib/dpkg/arch"), encoding="utf-8") as arch:
            first = arch.readline().strip()
            if first:
                return first
    except OSError:
        pass
    if root.rstrip("/") == "":
        try:
            return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                                  check=True).stdout.strip()  # fmt: skip
        except (OSError, subprocess.CalledProcessError):
            return None
    return None


def installed_stanza(package: str, root: str = "/") -> list[tuple[str, str]]:
    """The status stanza of the installed ``package`` (``name`` or ``name:arch``)."""
    name, _, arch = package.partition(":")
    with open(os.path.join(root, "var/lib/dpkg/status"), encoding="utf-8", errors="surrogateescape") as status:
        stanzas = parse_stanzas(status.read())
    found = []
    for fields in stanzas:
        package_field, status_field = _first(fields, "Package"), _first(fields, "Status")
        if package_field is None or field_value(package_field) != name or status_field is None:
            continue
        if field_value(status_field).split()[-1] not in FILES_ON_DISK:
            continue
        architecture = field_value(_first(fields, "Architecture") or "Architecture: all")
        if not arch or arch == architecture:
            found.append((architecture, fields))
    if not found:
        raise NotInstalled(f"{package} is not installed under {root}")
    if len(found) > 1:  # Multi-Arch: same, installed for several architectures: the native one
        native = [fields for architecture, fields in found if architecture in (native_architecture(root), "all")]
        if len(native) != 1:
            raise RepackError(f"{package} is installed for several architectures: name one as {name}:ARCH")
        return native[0]
    return found[0][1]


def info_prefix(root: str, name: str, architecture: str) -> str:
    """``ROOT/var/lib/dpkg/info/NAME[:ARCH]`` (the :ARCH form for Multi-Arch: same packages)."""
    info = os.path.join(root, "var/lib/dpkg/info")
    for prefix in (f"{info}/{name}:{architecture}", f"{info}/{name}"):
        if os.path.exists(f"{prefix}.list"):
            return prefix
    raise RepackError(f"no file list for {name} ({info}/{name}.list)")


def diversions(root: str) -> dict[str, tuple[str, str]]:
    """Diverted path -> (where it went, the package that diverted it; ``:`` for a local diversion)."""
    try:
        with open(os.path.join(root, "var/lib/dpkg/diversions"), encoding="utf-8",
                  errors="surrogateescape") as diverted:  # fmt: skip
            lines = diverted.read().splitlines()
    except OSError:
        return {}
    return {lines[i]: (lines[i + 1], lines[i + 2]) for i in range(0, len(lines) - 2, 3)}


def inside(root: str, path: str, follow_last: bool = False) -> str:
    """``path`` of the system at ``root`` as a path of this machine: symlinks resolved within ``root``
    (an absolute link in a root file system points into that root, not into this machine's /)."""
    base = root.rstrip("/")
    if not base:
        return path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current, hops = "", 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.rpartition("/")[0]
            continue
        candidate = f"{current}/{part}"
        if (parts or follow_last) and os.path.islink(base + candidate):
            hops += 1
            if hops > 40:
                raise RepackError(f"too many levels of symlinks in {path} under {root}")
            target = os.readlink(base + candidate)
            if target.startswith("/"):
                current = ""
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current = candidate
    return base + current if current else base or "/"


# --- the .deb -------------------------------------------------------------------------------------------
def deb_name(name: str, version: str, architecture: str) -> str:
    """``NAME_VERSION_ARCH.deb``, the version without its epoch."""
    return f"{name}_{version.split(':', 1)[-1]}_{architecture}.deb"


def deb_fields(path: str) -> dict[str, str]:
    """Package and Version of a .deb ({} when it is not one)."""
    try:
        out = subprocess.run(["dpkg-deb", "--field", path, "Package", "Version"], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out.splitlines() if ":" in line}


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_owner_mode(source: os.stat_result, target: str, root_owned_only: bool) -> None:
    """Owner, then mode (chown clears setuid bits), then times, of ``target`` as ``source``'s."""
    if not root_owned_only:
        os.chown(target, source.st_uid, source.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(source.st_mode):
        os.chmod(target, stat.S_IMODE(source.st_mode))
    os.utime(target, ns=(source.st_atime_ns, source.st_mtime_ns), follow_symlinks=False)


def _stage_files(paths: list[str], tree: str, root: str, name: str) -> tuple[list[str], list[str], bool]:
    """Copy the listed paths into ``tree``. Returns (regular files staged, paths skipped, whether every
    file is owned by root:root)."""
    diverted = diversions(root)
    as_directory = set()  # a symlink on disk under which the package has files: merged /usr's /lib, /bin
    for path in paths:
        parent = os.path.dirname(path)
        while parent not in ("/", ""):
            as_directory.add(parent)
            parent = os.path.dirname(parent)
    staged: list[tuple[str, os.stat_result]] = []
    files: list[str] = []
    skipped: list[str] = []
    for path in paths:
        source_path = path
        if path in diverted and diverted[path][1] != name:
            source_path = diverted[path][0]  # another package (or the admin) moved ours there
        try:
            source = os.lstat(inside(root, source_path))
            if stat.S_ISLNK(source.st_mode) and path in as_directory:
                source = os.stat(inside(root, source_path, follow_last=True))
        except OSError:
            skipped.append(path)
            continue
        target = tree + path
        if stat.S_ISDIR(source.st_mode):
            os.makedirs(target, exist_ok=True)
        elif stat.S_ISLNK(source.st_mode):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(inside(root, source_path)), target)
        elif stat.S_ISREG(source.st_mode):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(inside(root, source_path), target)
            files.append(path)
        else:  # a device, fifo or socket: dpkg packages do not ship them
            skipped.append(path)
            continue
        staged.append((target, source))
    root_owned = all(source.st_uid == 0 and source.st_gid == 0 for _, source in staged)
    keep_owners = os.geteuid() == 0
    if not keep_owners and not root_owned:
        raise RepackError(f"{name} has files not owned by root: run as root to keep their owners")
    for target, source in sorted(staged, key=lambda item: item[0].count("/"), reverse=True):  # deepest first
        _copy_owner_mode(source, target, not keep_owners)
    return files, skipped, root_owned and not keep_owners


def _write_control(fields: list[tuple[str, str]], prefix: str, debian: str, files: list[str]) -> None:
    """DEBIAN/control, conffiles and the control files of ``info/``."""
    os.makedirs(debian)
    os.chmod(debian, 0o755)
    with open(f"{debian}/control", "w", encoding="utf-8", errors="surrogateescape") as control:
        control.write("".join(f"{raw}\n" for field, raw in fields if field not in FIELDS_DROPPED))
    conffiles_field = _first(fields, "Conffiles")
    included = set(files)
    if conffiles_field:
        conffiles = []
        for line in conffiles_field.split("\n")[1:]:
            words = line.split()
            if words and words[0] in included and not {"obsolete", "remove-on-upgrade"} & set(words[2:]):
                conffiles.append(words[0])
        if conffiles:
            with open(f"{debian}/conffiles", "w", encoding="utf-8", errors="surrogateescape") as out:
                out.write("".join(f"{path}\n" for path in conffiles))
            os.chmod(f"{debian}/conffiles", 0o644)
    for part in CONTROL_FILES:
        source = f"{prefix}.{part}"
        if not os.path.isfile(source):
            continue
        target = f"{debian}/{part}"
        if part == "md5sums":  # only the files the .deb holds
            with open(source, encoding="utf-8", errors="surrogateescape") as sums:
                lines = [line for line in sums if "/" + line.rstrip("\n").split("  ", 1)[-1] in included]
            with open(target, "w", encoding="utf-8", errors="surrogateescape") as out:
                out.writelines(lines)
        else:
            shutil.copyfile(source, target)
        os.chmod(target, 0o755 if part in SCRIPTS else 0o644)


def repack_package(package: str, dest_dir: str, root: str = "/", check: bool = False) -> dict:
    """Rebuild the .deb of the installed ``package`` into ``dest_dir`` (see ``repack``).

    Returns {package, version, architecture, path, built, skipped}: ``built`` is false when the file
    was there already (same Package and Version); with ``check`` nothing is built and ``built`` says
    whether it would be.
    """
    fields = installed_stanza(package, root)
    name = field_value(_first(fields, "Package") or "")
    version = field_value(_first(fields, "Version") or "Version: ")
    architecture = field_value(_first(fields, "Architecture") or "Architecture: all")
    target = os.path.join(dest_dir, deb_name(name, version, architecture))
    result = {"package": name, "version": version, "architecture": architecture, "path": target,
              "built": False, "skipped": []}  # fmt: skip
    if os.path.isfile(target) and deb_fields(target) == {"Package": name, "Version": version}:
        return result
    result["built"] = True
    prefix = info_prefix(root, name, architecture)
    if check:
        return result
    with open(f"{prefix}.list", encoding="utf-8", errors="surrogateescape") as listed:
        paths = [line.rstrip("\n") for line in listed if line.strip()]
    paths = ["/" if p in ("/.", "/") else p.rstrip("/") for p in paths]
    os.makedirs(dest_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}-repack-", dir=dest_dir)  # same file system: a rename
    umask = os.umask(0o022)  # the parents a list leaves out are made 0755, as dpkg-deb would make them
    try:
        tree = os.path.join(staging, "tree")
        os.mkdir(tree, 0o755)
        files, skipped, root_owner_group = _stage_files([p for p in paths if p != "/"], tree, root, name)
        os.chmod(tree, 0o755)
        _write_control(fields, prefix, os.path.join(tree, "DEBIAN"), files)
        built = os.path.join(staging, "out.deb")
        command = ["dpkg-deb", "-Zxz", "--build", tree, built]
        if root_owner_group:  # not root, and every file is root's: what root would have built
            command.insert(1, "--root-owner-group")
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            raise RepackError(f"dpkg-deb --build {name} failed: {(run.stderr or run.stdout).strip()}")
        os.chmod(built, 0o600)  # the conffiles as they are now: a service's may hold its secrets
        os.replace(built, target)
        result["skipped"] = skipped
    finally:
        os.umask(umask)
        shutil.rmtree(staging, ignore_errors=True)
    return result


def repack(package: str, dest_dir: str, root: str = "/") -> str:
    """Rebuild the .deb of the installed ``package`` from the dpkg database under ``root`` into
    ``dest_dir`` as ``NAME_VERSION_ARCH.deb`` (version without epoch); returns its path. A file of the
    same Package and Version already there is returned as it is."""
    return repack_package(package, dest_dir, root)["path"]


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "required": True},
            "dest": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    dest = module.params["dest"]
    if not os.path.isdir(dest) and not module.check_mode:
        os.makedirs(dest, mode=0o700)
        os.chmod(dest, 0o700)
    kept, not_installed = [], []
    for package in module.params["packages"]:
        try:
            entry = repack_package(package, dest, check=module.check_mode)
        except NotInstalled:
            not_installed.append(package)  # a package the patch adds: nothing to keep
            continue
        except (RepackError, OSError) as error:
            module.fail_json(msg=f"cannot keep {package}: {error}", kept=kept)
        there = os.path.isfile(entry["path"]) and not (module.check_mode and entry["built"])
        kept.append({"package": entry["package"], "version": entry["version"], "path": entry["path"],
                     "sha256": sha256(entry["path"]) if there else None, "built": entry["built"],
                     "skipped": entry["skipped"]})  # fmt: skip
    module.exit_json(changed=any(entry["built"] for entry in kept), kept=kept, not_installed=not_installed)


if __name__ == "__main__":
    main()
