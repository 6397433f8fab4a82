#!/usr/bin/python3
"""Ansible module: keep a set of files and directories on a node as given, in one remote call.

The ``viocli_files`` action plugin renders the templates on the OMS and calls this module once with
every file's path and attributes (``files``) and, aligned by index, its content (``contents``,
no_log). A file is rewritten (atomically: a temporary file in the same directory, renamed over it)
only when its bytes differ, so its mtime, which the restart rule of ``viocli_units`` reads, moves only
when its content does; an owner or mode that differs is set in place.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import shlex
import stat
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: viocli_files
short_description: Write files whose content differs and create directories, in one remote call
description: >-
  Called by the viocli_files action plugin, which renders the templates; not meant to be called on
  its own.
options:
  files:
    description: >-
      Dicts with C(dest), C(owner), C(group), C(mode) (octal string), C(state) (file or directory) and
      C(validate) (a command run on the new file, C(%s) its path, before it replaces the old one; a
      failure keeps the old file), in the order to apply them (a directory before the files in it).
    type: list
    elements: dict
    required: true
  contents:
    description: The content of each entry of C(files), by index (empty for a directory).
    type: list
    elements: str
    required: true
  return_before:
    description: The paths whose old content to return (base64, in C(before), for --diff) when they change.
    type: list
    elements: str
    default: []
"""


class FileError(Exception):
    """One entry could not be applied: the message names the path and what to do."""


def _ids(entry: dict) -> tuple[int, int]:
    owner, group = entry.get("owner") or "root", entry.get("group") or "root"
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        message = f"{entry['dest']}: user {owner} does not exist on this node (is its package installed?)"
        raise FileError(message) from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        message = f"{entry['dest']}: group {group} does not exist on this node (is its package installed?)"
        raise FileError(message) from None
    return uid, gid


def _mode(entry: dict, default: int) -> int:
    text = entry.get("mode")
    return int(str(text), 8) if text not in (None, "") else default


def _fix_attributes(path: str, uid: int, gid: int, mode: int, check: bool) -> bool:
    """Set owner and mode when they differ; return whether they did."""
    info = os.lstat(path)
    changed = False
    if (info.st_uid, info.st_gid) != (uid, gid):
        changed = True
        if not check:
            os.lchown(path, uid, gid)
    if stat.S_IMODE(info.st_mode) != mode:
        changed = True
        if not check:
            os.chmod(path, mode)
    return changed


def ensure_directory(entry: dict, check: bool) -> bool:
    """Create the directory, or fix its owner and mode; return whether anything changed."""
    path = entry["dest"]
    uid, gid = _ids(entry)
    mode = _mode(entry, 0o755)
    if not os.path.exists(path):
        if not check:
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        return True
    if not os.path.isdir(path):
        raise FileError(f"{path} exists and is not a directory; move it away and run again")
    return _fix_attributes(path, uid, gid, mode, check)


def _validate(entry: dict, temporary: str) -> None:
    """Run the entry's validate command on the new file; raise FileError when it fails."""
    command = entry.get("validate")
    if not command:
        return
    argv = shlex.split(str(command).replace("%s", shlex.quote(temporary)))
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
        raise FileError(
            f"{entry['dest']}: the new file fails `{command}` (exit {result.returncode}): {' / '.join(output)}; "
            "the old file is kept: fix the inventory or custom.yml and run again"
        )


def ensure_file(entry: dict, content: bytes, check: bool) -> tuple[bool, bytes | None]:
    """Write the file when its bytes differ, or fix its owner and mode; return (changed, old bytes)."""
    path = entry["dest"]
    uid, gid = _ids(entry)
    mode = _mode(entry, 0o644)
    directory = os.path.dirname(path) or "/"
    if not os.path.isdir(directory) and not check:
        raise FileError(f"{path}: its directory {directory} does not exist (is its package installed?)")
    old = None
    if os.path.islink(path):
        # a packaged symlink (Debian's /etc/mysql/my.cnf -> alternatives) is replaced by the file, as the
        # template and copy modules do: the rename below replaces the link, never what it points to
        old = b""
    elif os.path.lexists(path):
        if not os.path.isfile(path):
            raise FileError(f"{path} exists and is not a regular file; move it away and run again")
        with open(path, "rb") as handle:
            old = handle.read()
    if old == content:
        return _fix_attributes(path, uid, gid, mode, check), None
    if not check:
        handle, temporary = tempfile.mkstemp(prefix=".viocli-", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
                out.flush()
                os.fchown(out.fileno(), uid, gid)
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            _validate(entry, temporary)
            os.rename(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    return True, old


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "dict", "required": True},
            "contents": {"type": "list", "elements": "str", "required": True, "no_log": True},
            "return_before": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    files, contents = module.params["files"], module.params["contents"]
    if len(files) != len(contents):
        module.fail_json(msg=f"viocli_files: {len(files)} files but {len(contents)} contents")
    want_before = set(module.params["return_before"])
    changed: list[str] = []
    before: dict[str, str] = {}
    try:
        for entry, content in zip(files, contents, strict=True):
            if entry.get("state", "file") == "directory":
                if ensure_directory(entry, module.check_mode):
                    changed.append(entry["dest"])
                continue
            did_change, old = ensure_file(entry, content.encode("utf-8"), module.check_mode)
            if did_change:
                changed.append(entry["dest"])
                if entry["dest"] in want_before:
                    # base64: Ansible masks every no_log value (the new contents) inside the output, and an
                    # old file often contains the new one (lines appended by hand)
                    before[entry["dest"]] = base64.b64encode(old or b"").decode("ascii")
    except (FileError, OSError) as error:
        module.fail_json(msg=str(error), changed=bool(changed), changed_paths=changed)
    module.exit_json(changed=bool(changed), changed_paths=changed, before=before)


if __name__ == "__main__":
    main()
