"""Collect from one node: a bash script, sent on SSH's stdin, that runs the plan's commands (in parallel,
each with a time limit), cuts files larger than the cap to their last bytes, and writes everything as
one tar stream on stdout. Nothing is staged on the OMS: the stream is read member by member.

The stream's members: ``.viocli/meta/*`` (what the node found: cuts, commands' exit codes, absent
paths), ``.viocli/commands/<name>.txt``, ``.viocli/capped/<path>`` (the end of a file that was cut),
and every other file under its path relative to ``/``.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from viocli.bundle.plan import EXCLUDED, NodePlan
from viocli.children import die_with_viocli
from viocli.health.shell import SshShell
from viocli.inventory.topology import Node

COMMAND_TIMEOUT = 60  # seconds one diagnostic command may run on the node
ESTIMATE_TIMEOUT = 30.0
META = ".viocli/meta/"
COMMANDS = ".viocli/commands/"
CAPPED = ".viocli/capped/"
STDERR_TAIL = 2000
ROTATED_REGEX = r".*\.[0-9]+(\.gz|\.xz|\.bz2)?$|.*\.(gz|xz|bz2|old)$"

_SCRIPT = r"""
main() {
set -u
umask 077
mode=@MODE@
cap=@CAP@
work=$(mktemp -d /tmp/viocli-getlogs.XXXXXX) || { echo "cannot make a work directory in /tmp" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT
v="$work/.viocli"
mkdir -p "$v/meta" "$v/commands" "$v/capped"
: > "$v/meta/cuts.tsv"; : > "$v/meta/commands.tsv"; : > "$v/meta/absent.txt"; : > "$v/meta/errors.txt"
for path in @PATHS@; do
    if [ ! -e "$path" ]; then printf '%s\n' "$path" >> "$v/meta/absent.txt"; continue; fi
    find -H "$path" -xdev -type f @FILTERS@ -printf '%s\t%p\0' 2>> "$v/meta/errors.txt"
done | sort -zu > "$work/found"  # a file under two listed paths is sent once
if [ "$mode" = size ]; then
    total=0; count=0
    while IFS=$'\t' read -r -d '' size file; do
        [ "$size" -gt "$cap" ] && size=$cap
        total=$((total + size)); count=$((count + 1))
    done < "$work/found"
    echo "$total $count"
    return 0
fi
hostname > "$v/meta/node.txt"; date -u +%Y-%m-%dT%H:%M:%SZ >> "$v/meta/node.txt"
run() {
    local began; began=$(date +%s%N)
    timeout -k 2 @TIMEOUT@ bash -c "$2" > "$v/commands/$1.txt" 2>&1 < /dev/null
    local rc=$?
    printf '%s\t%s\t%s\n' "$1" "$rc" "$(( ($(date +%s%N) - began) / 1000000 ))" >> "$v/meta/commands.tsv"
}
@COMMANDS@
wait
for out in "$v"/commands/*.txt; do
    size=$(stat -c %s "$out")
    if [ "$size" -gt "$cap" ]; then
        tail -c "$cap" "$out" > "$out.cut" && mv "$out.cut" "$out"
        printf '%s\t%s\t%s\n' "${out#$work/}" "$size" "$cap" >> "$v/meta/cuts.tsv"
    fi
done
: > "$work/list"
while IFS=$'\t' read -r -d '' size file; do
    if [ "$size" -le "$cap" ]; then
        printf '%s\0' "${file#/}" >> "$work/list"
        continue
    fi
    mkdir -p "$v/capped$(dirname "$file")"
    case "$file" in
        *.gz) gzip -dc "$file" | tail -c "$cap" | gzip -1 > "$v/capped$file" ;;
        *) tail -c "$cap" "$file" > "$v/capped$file" ;;
    esac
    printf '%s\t%s\t%s\n' "$file" "$size" "$cap" >> "$v/meta/cuts.tsv"
done < "$work/found"
tar -cf - --ignore-failed-read --warning=no-file-changed --warning=no-file-removed --warning=no-file-shrank \
    -C "$work" .viocli --no-recursion -C / --null -T "$work/list"
rc=$?
[ "$rc" -le 1 ] || { echo "tar exited with status $rc" >&2; return "$rc"; }
return 0
}
main < /dev/null
"""


def script(plan: NodePlan, mode: Literal["size", "collect"]) -> str:
    """The bash script that estimates (``size``: prints "BYTES FILES") or collects (``collect``) ``plan``."""
    filters = []
    if plan.since:
        filters.append(f"-newermt @{int(plan.since)}")
    if plan.recent_only:
        filters.append(f"-regextype posix-extended -not -regex {shlex.quote(ROTATED_REGEX)}")
    filters += [f"-not -path {shlex.quote(pattern)}" for pattern in EXCLUDED]
    commands = "\n".join(f"run {shlex.quote(name)} {shlex.quote(command)} &" for name, command in plan.commands)
    return (
        _SCRIPT.replace("@MODE@", mode)
        .replace("@CAP@", str(int(plan.cap)))
        .replace("@TIMEOUT@", str(COMMAND_TIMEOUT))
        .replace("@PATHS@", " ".join(shlex.quote(p) for p in plan.paths))
        .replace("@FILTERS@", " ".join(filters))
        .replace("@COMMANDS@", commands)
    )


def estimate(shell: SshShell, node: Node, plan: NodePlan) -> tuple[int, int] | str:
    """(bytes, files) ``plan`` would collect from ``node`` (files capped), or why it could not be told."""
    result = shell.run(node, "bash -c " + shlex.quote(script(plan, "size")), timeout=ESTIMATE_TIMEOUT)
    fields = result.stdout.split()
    if result.rc != 0 or len(fields) != 2 or not all(f.isdigit() for f in fields):
        return result.reason()
    return int(fields[0]), int(fields[1])


@dataclass
class NodeStream:
    """What came of one node's stream, besides its files."""

    cuts: dict[str, tuple[int, int]] = field(default_factory=dict)  # member path -> (original size, kept)
    commands: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (exit status, milliseconds)
    absent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what the node could not read, and stream failures
    received: int = 0  # members handed on


# (kind, name, data): kind "command" (name: the command's name) or "file" (name: its absolute path).
MemberHandler = Callable[[str, str, bytes], None]


def _meta(stream: NodeStream, name: str, data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    if name == "cuts.tsv":
        for path, size, kept in (r for r in rows if len(r) == 3):
            command = path.removeprefix(COMMANDS)
            key = f"command:{command.removesuffix('.txt')}" if command != path else path
            stream.cuts[key] = (int(size), int(kept))
    elif name == "commands.tsv":
        for command, rc, ms in (r for r in rows if len(r) == 3):
            stream.commands[command] = (int(rc), int(ms))
    elif name == "absent.txt":
        stream.absent = [line for line in text.splitlines() if line]
    elif name == "errors.txt":
        stream.errors += [line.strip() for line in text.splitlines() if line.strip()][:50]


def collect(shell: SshShell, node: Node, plan: NodePlan, handle: MemberHandler) -> NodeStream:
    """Stream ``plan`` from ``node``, handing each file to ``handle`` as it arrives. Never raises for a
    node's failure: what went wrong is in the result's ``errors``."""
    stream = NodeStream()
    argv = shell.stream_argv(node, "bash -s", stdin=True)
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_viocli(),
        )
    except OSError as error:
        stream.errors.append(f"cannot run ssh: {error}")
        return stream
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(child.stderr.read()), daemon=True)
    reader.start()
    try:
        with contextlib.suppress(BrokenPipeError):
            child.stdin.write(script(plan, "collect").encode())
            child.stdin.close()
        try:
            with tarfile.open(fileobj=child.stdout, mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    extracted = tar.extractfile(member)
                    data = extracted.read() if extracted else b""
                    _dispatch(stream, member.name, data, handle)
        except tarfile.TarError as error:
            stream.errors.append(f"the stream from {node.name} broke off: {error}")
    finally:
        with contextlib.suppress(OSError):
            child.stdout.close()
        try:
            rc = child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            rc = child.wait()
        reader.join(timeout=5)
    tail = b"".join(stderr).decode("utf-8", "replace").strip()[-STDERR_TAIL:]
    if rc != 0:
        reason = tail.splitlines()[-1] if tail else f"exit status {rc}"
        stream.errors.append(f"ssh {node.name} ({node.mgmt_ip}): {reason}")
    return stream


def _dispatch(stream: NodeStream, name: str, data: bytes, handle: MemberHandler) -> None:
    if name.startswith(META):
        _meta(stream, name.removeprefix(META), data)
        return
    if name.startswith(COMMANDS):
        handle("command", name.removeprefix(COMMANDS).removesuffix(".txt"), data)
    elif name.startswith(CAPPED):
        handle("file", "/" + name.removeprefix(CAPPED), data)
    else:
        handle("file", "/" + name, data)
    stream.received += 1
