"""The Galera side of a database backup: which member takes it, holding that member still while it
does, and what the data looked like (per-table row counts and checksums) at that moment.

The member is the least loaded Synced one (fewest client connections: HAProxy sends the clients to
one primary member, so this is another one), never a donor or a desynced member. While the backup
runs, a session of viocli's holds FLUSH TABLES WITH READ LOCK on it: Galera then desyncs the member
(it sends no flow control, so the rest of the cluster goes on at full speed) and pauses its applier,
so its data stands still at one Galera position (UUID:seqno), which the manifest records together
with the checksums of every table. When the session ends (UNLOCK TABLES, or viocli dies and SSH
closes it) the member catches up by itself. The data is copied with ``mariabackup --no-lock``: the
lock is already held, by that session.
"""

from __future__ import annotations

import select
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from viocli.children import die_with_viocli
from viocli.errors import OperationFailed, Refused
from viocli.health.parallel import fan_out
from viocli.health.shell import CommandResult, NodeShell, SshShell
from viocli.inventory.topology import Node

# Schemas whose tables are not checksummed: the server's own (the mysql schema's InnoDB statistics
# tables change by themselves) and the virtual ones.
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
FREEZE_TIMEOUT = 60  # seconds FLUSH TABLES WITH READ LOCK may wait for running statements
CHECKSUM_TIMEOUT = 3600.0
STATUS_VARIABLES = (
    "wsrep_local_state",
    "wsrep_local_state_comment",
    "wsrep_cluster_status",
    "wsrep_cluster_state_uuid",
    "wsrep_last_committed",
    "wsrep_desync_count",
    "wsrep_local_recv_queue",
    "Threads_connected",
)
MARK = "viocli-mark"
SYNCED = "4"


def _status_sql() -> str:
    names = ", ".join(f"'{name}'" for name in STATUS_VARIABLES)
    return f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names}); SELECT 'version', VERSION();"


def member_status_command() -> str:
    """The command that prints a member's wsrep state, load and version, one ``name<TAB>value`` a line."""
    return f"mariadb --batch --skip-column-names -e {shlex.quote(_status_sql())}"


def parse_status(text: str) -> dict[str, str]:
    """``name<TAB>value`` lines -> {lower-case name: value}."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition("\t")
        if name:
            values[name.strip().lower()] = value.strip()
    return values


@dataclass(frozen=True)
class MemberState:
    """What a database member reports, as far as choosing the backup's member goes."""

    node: str
    status: dict[str, str]
    problem: str | None  # why it cannot take the backup; None when it can

    @property
    def connections(self) -> int:
        return int(self.status.get("threads_connected", "0") or 0)

    @property
    def recv_queue(self) -> int:
        return int(self.status.get("wsrep_local_recv_queue", "0") or 0)


def judge(node: str, result: CommandResult) -> MemberState:
    """Whether the member can take the backup: reachable, Primary, Synced, not desynced."""
    if result.rc != 0:
        return MemberState(node, {}, f"no SQL answer ({result.reason()})")
    status = parse_status(result.stdout)
    if status.get("wsrep_cluster_status") != "Primary":
        return MemberState(node, status, f"not in a Primary component ({status.get('wsrep_cluster_status', '?')})")
    if status.get("wsrep_local_state") != SYNCED:
        return MemberState(node, status, f"{status.get('wsrep_local_state_comment', 'not Synced')}")
    if int(status.get("wsrep_desync_count", "0") or 0) > 0:
        return MemberState(node, status, "desynced (a backup or a state transfer runs there)")
    return MemberState(node, status, None)


def choose_member(states: Sequence[MemberState]) -> MemberState:
    """The least loaded member that can take the backup; Refused (exit 4) naming each member's problem."""
    able = [s for s in states if s.problem is None]
    if not able:
        found = "; ".join(f"{s.node}: {s.problem}" for s in states)
        raise Refused(
            f"no Galera member can take the backup: {found}",
            hint="check the cluster with: viocli deployment status; back up once a member is Synced",
        )
    return min(able, key=lambda s: (s.connections, s.recv_queue, s.node))


def member_states(shell: NodeShell, nodes: Sequence[Node]) -> list[MemberState]:
    """Every database member's state, asked of all at once."""
    return fan_out(list(nodes), lambda node: judge(node.name, shell.run(node, member_status_command(), timeout=15)))


def checksum_command(socket: str | None = None) -> str:
    """The command that prints every user table's row count and checksum on a member (or on the
    server behind ``socket``): ``rows<TAB>schema.table<TAB>N`` and ``schema.table<TAB>checksum`` lines."""
    client = "mariadb --batch --skip-column-names" + (f" --socket={shlex.quote(socket)}" if socket else "")
    excluded = ", ".join(f"'{schema}'" for schema in SYSTEM_SCHEMAS)
    generate = (
        "SELECT CONCAT('SELECT ''rows'', ''', TABLE_SCHEMA, '.', TABLE_NAME, ''', COUNT(*) FROM `', TABLE_SCHEMA, "
        "'`.`', TABLE_NAME, '`; CHECKSUM TABLE `', TABLE_SCHEMA, '`.`', TABLE_NAME, '` EXTENDED;') "
        f"FROM information_schema.TABLES WHERE TABLE_TYPE='BASE TABLE' AND TABLE_SCHEMA NOT IN ({excluded}) "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME"
    )
    return "bash -o pipefail -c " + shlex.quote(f"{client} -e {shlex.quote(generate)} | {client}")


def parse_checksums(text: str) -> dict[str, dict[str, int | None]]:
    """The output of :func:`checksum_command` -> {"schema.table": {"rows": N, "checksum": C}}."""
    tables: dict[str, dict[str, int | None]] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[0] == "rows":
            tables.setdefault(fields[1], {})["rows"] = int(fields[2])
        elif len(fields) == 2:
            value = fields[1].strip()
            tables.setdefault(fields[0], {})["checksum"] = None if value in ("", "NULL") else int(value)
    return tables


def compare_checksums(expected: Mapping[str, Mapping[str, Any]], found: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per table whose row count or checksum differs, or that is missing or extra."""
    problems = []
    for table in sorted(set(expected) | set(found)):
        want, got = expected.get(table), found.get(table)
        if got is None:
            problems.append(f"{table}: missing")
        elif want is None:
            problems.append(f"{table}: not in the backup")
        elif dict(want) != dict(got):
            problems.append(
                f"{table}: rows {got.get('rows')} checksum {got.get('checksum')}, the manifest says "
                f"rows {want.get('rows')} checksum {want.get('checksum')}"
            )
    return problems


def table_checksums(shell: NodeShell, node: Node, socket: str | None = None) -> dict[str, dict[str, int | None]]:
    """Every user table's row count and checksum on ``node`` (or the server behind ``socket`` there)."""
    result = shell.run(node, checksum_command(socket), timeout=CHECKSUM_TIMEOUT)
    if result.rc != 0:
        raise OperationFailed(f"table checksums on {node.name} failed: {result.reason()}")
    return parse_checksums(result.stdout)


class FrozenMember:
    """A session on a member that holds FLUSH TABLES WITH READ LOCK until :meth:`release` (or until
    viocli dies: SSH then closes the session and the server drops the lock).

    :attr:`position` is ``UUID:seqno`` and :attr:`state` the wsrep state while frozen.
    """

    def __init__(self, shell: SshShell, node: Node):
        self.node = node
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by release() or abandon()
        command = "mariadb --batch --skip-column-names --unbuffered"
        self._process = subprocess.Popen(
            shell.stream_argv(node, command, stdin=True),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            preexec_fn=die_with_viocli(),
            bufsize=0,  # unbuffered: select() must see every line that has not been read
        )
        self.status: dict[str, str] = {}

    def _send(self, sql: str) -> dict[str, str]:
        """Run ``sql`` in the session and read its output up to the mark; OperationFailed if it ends."""
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            self._process.stdin.write(f"{sql}\nSELECT '{MARK}', 1;\n".encode())
            self._process.stdin.flush()
        except BrokenPipeError:
            raise self._ended() from None
        lines: list[str] = []
        deadline = time.monotonic() + FREEZE_TIMEOUT + 15
        stdout = self._process.stdout
        while True:
            ready, _, _ = select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise OperationFailed(f"the backup's session on {self.node.name} did not answer in time")
            line = stdout.readline().decode("utf-8", "replace")
            if not line:
                raise self._ended()
            if line.startswith(MARK):
                return parse_status("\n".join(lines))
            lines.append(line.rstrip("\n"))

    def _ended(self) -> OperationFailed:
        self._process.wait()
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        reason = text[-1] if text else f"exit status {self._process.returncode}"
        return OperationFailed(f"the backup's session on {self.node.name} ended: {reason}")

    def freeze(self) -> None:
        """Take the read lock (the member desyncs and stops applying) and read its position."""
        self._send(f"SET SESSION lock_wait_timeout={FREEZE_TIMEOUT}; FLUSH TABLES WITH READ LOCK;")
        self.status = self._send(_status_sql())

    @property
    def position(self) -> str:
        return f"{self.status.get('wsrep_cluster_state_uuid', '?')}:{self.status.get('wsrep_last_committed', '?')}"

    @property
    def state(self) -> str:
        return self.status.get("wsrep_local_state_comment", "?")

    @property
    def version(self) -> str:
        return self.status.get("version", "?")

    def release(self) -> None:
        """UNLOCK TABLES and end the session (the member catches up and is Synced again by itself)."""
        if self._process.poll() is None:
            try:
                self._send("UNLOCK TABLES;")
            finally:
                assert self._process.stdin is not None
                self._process.stdin.close()
                try:
                    self._process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        self._stderr.close()

    def abandon(self) -> None:
        """End the session at once (the server drops the lock when the connection closes)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stderr.close()
