"""SQLite state store under /var/lib/viocli (``viocli.db``).

It holds no secrets, so the file is world-readable (0644) and read-only commands work for any
user; only root writes it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path

from viocli.errors import Refused
from viocli.inventory.topology import Addresses, Node

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments (
    name TEXT PRIMARY KEY,
    inventory_path TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'planned',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    deployment TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    vm_name TEXT NOT NULL,
    vm_id TEXT,
    ip TEXT NOT NULL,
    api_ip TEXT,
    status TEXT NOT NULL DEFAULT 'planned',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (deployment, name)
);
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL,
    command TEXT NOT NULL,
    user TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    result TEXT NOT NULL DEFAULT 'running',
    exit_code INTEGER,
    message TEXT
);
CREATE INDEX IF NOT EXISTS operations_by_deployment ON operations (deployment, id);
CREATE TABLE IF NOT EXISTS backups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    nfs_volume TEXT NOT NULL,
    started_at TEXT NOT NULL,
    completed_at TEXT,
    status TEXT NOT NULL DEFAULT 'running',
    size_bytes INTEGER,
    checksum TEXT,
    message TEXT,
    UNIQUE (deployment, name)
);
CREATE TABLE IF NOT EXISTS patches (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    description TEXT NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    signed_by TEXT,
    added_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS patch_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    nodes TEXT NOT NULL,
    done TEXT NOT NULL DEFAULT '[]',
    snapshot TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    message TEXT
);
CREATE INDEX IF NOT EXISTS patch_runs_by_deployment ON patch_runs (deployment, id);
"""


def now() -> str:
    """UTC timestamp as stored: ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    inventory_path: Path
    mode: str
    status: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class NodeRecord:
    deployment: str
    name: str
    role: str
    vm_name: str
    vm_id: str | None
    ip: str
    api_ip: str | None
    status: str
    updated_at: str


@dataclass(frozen=True)
class OperationRecord:
    id: int
    deployment: str
    command: str
    user: str
    pid: int
    started_at: str
    ended_at: str | None
    result: str
    exit_code: int | None
    message: str | None


@dataclass(frozen=True)
class BackupRecord:
    id: int
    deployment: str
    name: str
    kind: str
    nfs_volume: str
    started_at: str
    completed_at: str | None
    status: str
    size_bytes: int | None
    checksum: str | None
    message: str | None


@dataclass(frozen=True)
class PatchRecord:
    """A patch in the OMS's patch store (``patch add``)."""

    name: str
    version: str
    type: str
    description: str
    file: str
    sha256: str
    size_bytes: int
    signed_by: str | None
    added_at: str


@dataclass(frozen=True)
class PatchRun:
    """One ``patch install`` or ``patch uninstall`` on a deployment: its nodes in order, those done.

    ``status``: running (unfinished: the same command resumes it), reverting (a node failed its check
    and the nodes in ``done`` still go back to their snapshots: the same command carries on), done,
    reverted (every node touched went back to its snapshot).
    """

    id: int
    deployment: str
    name: str
    version: str
    action: str
    status: str
    nodes: tuple[str, ...]
    done: tuple[str, ...]
    snapshot: str
    started_at: str
    ended_at: str | None
    message: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PatchRun:
        values = dict(row)
        values["nodes"] = tuple(json.loads(values["nodes"]))
        values["done"] = tuple(json.loads(values["done"]))
        return cls(**values)


class StateStore:
    """Access to viocli.db. Open with :meth:`open_writable` (root) or :meth:`open_readonly`."""

    def __init__(self, connection: sqlite3.Connection, path: Path, writable: bool):
        self._db = connection
        self._db.row_factory = sqlite3.Row
        self.path = path
        self.writable = writable

    @classmethod
    def open_writable(cls, path: Path) -> StateStore:
        """Open (creating if needed) the store for a mutating command."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        existed = path.exists()
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        if not existed:
            os.chmod(path, 0o644)
        connection.execute("PRAGMA busy_timeout = 30000")
        store = cls(connection, path, writable=True)
        store._migrate()
        return store

    @classmethod
    def open_readonly(cls, path: Path) -> StateStore | None:
        """Open for reading, or None when there is no store yet (nothing was ever created)."""
        if not path.exists():
            return None
        try:
            connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30, isolation_level=None)
            connection.execute("SELECT 1 FROM deployments LIMIT 1")
        except sqlite3.Error as error:
            raise Refused(f"cannot read the state store {path}: {error}", hint="run the command with sudo") from None
        return cls(connection, path, writable=False)

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        # executescript commits on its own, so it runs outside any explicit transaction.
        self._db.executescript(SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken immediately so concurrent writers queue instead of failing."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    # --- deployments ---------------------------------------------------------------------------
    def register_deployment(self, name: str, inventory_path: Path, mode: str) -> None:
        """Record (or update) which inventory file a deployment comes from."""
        stamp = now()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO deployments (name, inventory_path, mode, created_at, updated_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET inventory_path=excluded.inventory_path, mode=excluded.mode, "
                "updated_at=excluded.updated_at",
                (name, str(Path(inventory_path).resolve()), mode, stamp, stamp),
            )

    def set_deployment_status(self, name: str, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE deployments SET status=?, updated_at=? WHERE name=?", (status, now(), name))

    @staticmethod
    def _deployment_record(row: sqlite3.Row) -> DeploymentRecord:
        return DeploymentRecord(**{**dict(row), "inventory_path": Path(row["inventory_path"])})

    def deployment(self, name: str) -> DeploymentRecord | None:
        row = self._db.execute("SELECT * FROM deployments WHERE name=?", (name,)).fetchone()
        return None if row is None else self._deployment_record(row)

    def deployments(self) -> list[DeploymentRecord]:
        rows = self._db.execute("SELECT * FROM deployments ORDER BY name").fetchall()
        return [self._deployment_record(r) for r in rows]

    def forget_deployment(self, name: str) -> dict[str, int]:
        """Drop every row of deployment ``name`` (its record, nodes, operation history and backup
        catalog) in one transaction; returns how many rows each table lost."""
        with self.transaction() as db:
            return {
                table: db.execute(f"DELETE FROM {table} WHERE {column}=?", (name,)).rowcount
                for table, column in (
                    ("deployments", "name"),
                    ("nodes", "deployment"),
                    ("operations", "deployment"),
                    ("backups", "deployment"),
                    ("patch_runs", "deployment"),
                )
            }

    # --- nodes ---------------------------------------------------------------------------------
    def addresses(self, deployment: str) -> dict[str, Addresses]:
        """Every recorded node's addresses: the input that keeps IP allocation stable."""
        rows = self._db.execute("SELECT name, ip, api_ip FROM nodes WHERE deployment=?", (deployment,))
        return {
            r["name"]: Addresses(IPv4Address(r["ip"]), IPv4Address(r["api_ip"]) if r["api_ip"] else None) for r in rows
        }

    def record_nodes(self, deployment: str, nodes: Iterable[Node]) -> None:
        """Record planned nodes and their addresses; existing VM ids and statuses are kept."""
        stamp = now()
        with self.transaction() as db:
            for node in nodes:
                db.execute(
                    "INSERT INTO nodes (deployment, name, role, vm_name, ip, api_ip, updated_at) "
                    "VALUES (?,?,?,?,?,?,?) ON CONFLICT(deployment, name) DO UPDATE SET role=excluded.role, "
                    "vm_name=excluded.vm_name, ip=excluded.ip, api_ip=excluded.api_ip, updated_at=excluded.updated_at",
                    (
                        deployment,
                        node.name,
                        node.role,
                        node.vm_name,
                        str(node.mgmt_ip),
                        str(node.api_ip) if node.api_ip else None,
                        stamp,
                    ),
                )

    def update_node(self, deployment: str, name: str, *, vm_id: str | None = None, status: str | None = None) -> None:
        """Set a node's VM id and/or status."""
        with self.transaction() as db:
            if vm_id is not None:
                db.execute(
                    "UPDATE nodes SET vm_id=?, updated_at=? WHERE deployment=? AND name=?",
                    (vm_id, now(), deployment, name),
                )
            if status is not None:
                db.execute(
                    "UPDATE nodes SET status=?, updated_at=? WHERE deployment=? AND name=?",
                    (status, now(), deployment, name),
                )

    def forget_node(self, deployment: str, name: str) -> None:
        """Drop a node for good (its VM was destroyed and it is not coming back): frees its IP."""
        with self.transaction() as db:
            db.execute("DELETE FROM nodes WHERE deployment=? AND name=?", (deployment, name))

    def nodes(self, deployment: str) -> list[NodeRecord]:
        rows = self._db.execute("SELECT * FROM nodes WHERE deployment=? ORDER BY name", (deployment,)).fetchall()
        return [NodeRecord(**dict(r)) for r in rows]

    # --- operations ----------------------------------------------------------------------------
    def start_operation(self, deployment: str, command: str, user: str, pid: int) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO operations (deployment, command, user, pid, started_at) VALUES (?,?,?,?,?)",
                (deployment, command, user, pid, now()),
            )
            return int(cursor.lastrowid or 0)

    def finish_operation(self, operation_id: int, result: str, exit_code: int, message: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE operations SET ended_at=?, result=?, exit_code=?, message=? WHERE id=?",
                (now(), result, exit_code, message, operation_id),
            )

    def mark_interrupted(self, deployment: str, pid: int) -> int:
        """Close the still-'running' operations of a process that died; returns how many."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE operations SET ended_at=?, result='interrupted', message='the process died before it finished' "
                "WHERE deployment=? AND pid=? AND result='running'",
                (now(), deployment, pid),
            )
            return cursor.rowcount

    def operations(self, deployment: str, limit: int = 50) -> list[OperationRecord]:
        rows = self._db.execute(
            "SELECT * FROM operations WHERE deployment=? ORDER BY id DESC LIMIT ?", (deployment, limit)
        ).fetchall()
        return [OperationRecord(**dict(r)) for r in rows]

    # --- backup catalog ------------------------------------------------------------------------
    def start_backup(self, deployment: str, name: str, kind: str, nfs_volume: str) -> int:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO backups (deployment, name, kind, nfs_volume, started_at) VALUES (?,?,?,?,?)",
                (deployment, name, kind, nfs_volume, now()),
            )
            return int(cursor.lastrowid or 0)

    def finish_backup(
        self,
        backup_id: int,
        status: str,
        *,
        size_bytes: int | None = None,
        checksum: str | None = None,
        message: str | None = None,
    ) -> None:
        """Close a backup entry; only status 'complete' ever makes a backup usable."""
        with self.transaction() as db:
            db.execute(
                "UPDATE backups SET completed_at=?, status=?, size_bytes=?, checksum=?, message=? WHERE id=?",
                (now(), status, size_bytes, checksum, message, backup_id),
            )

    def fail_unfinished_backups(self, deployment: str, message: str) -> list[BackupRecord]:
        """Mark the deployment's still-'running' backups failed (their process died); returns them."""
        with self.transaction() as db:
            rows = db.execute("SELECT * FROM backups WHERE deployment=? AND status='running'", (deployment,)).fetchall()
            db.execute(
                "UPDATE backups SET completed_at=?, status='failed', message=? WHERE deployment=? AND status='running'",
                (now(), message, deployment),
            )
        return [BackupRecord(**dict(r)) for r in rows]

    def set_backup_status(self, deployment: str, name: str, status: str, message: str | None = None) -> None:
        """Change the status of a finished backup (``verified`` after a verify passes, ``failed`` when
        one does not)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE backups SET status=?, message=? WHERE deployment=? AND name=?",
                (status, message, deployment, name),
            )

    def backup_named(self, name: str) -> BackupRecord | None:
        """The catalog entry of the backup ``name``, whichever deployment (or the OMS) it belongs to."""
        row = self._db.execute("SELECT * FROM backups WHERE name=? ORDER BY id DESC LIMIT 1", (name,)).fetchone()
        return BackupRecord(**dict(row)) if row else None

    def record_backup(self, record: BackupRecord) -> None:
        """Add a finished backup found on a target (made before this catalog existed) to the catalog."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO backups (deployment, name, kind, nfs_volume, started_at, completed_at, status, "
                "size_bytes, checksum, message) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    record.deployment,
                    record.name,
                    record.kind,
                    record.nfs_volume,
                    record.started_at,
                    record.completed_at,
                    record.status,
                    record.size_bytes,
                    record.checksum,
                    record.message,
                ),
            )

    def forget_backup(self, deployment: str, name: str) -> None:
        """Drop a backup that retention deleted from the catalog."""
        with self.transaction() as db:
            db.execute("DELETE FROM backups WHERE deployment=? AND name=?", (deployment, name))

    def backups(self, deployment: str) -> list[BackupRecord]:
        rows = self._db.execute(
            "SELECT * FROM backups WHERE deployment=? ORDER BY started_at DESC, id DESC", (deployment,)
        ).fetchall()
        return [BackupRecord(**dict(r)) for r in rows]

    # --- patches -------------------------------------------------------------------------------
    def add_patch(self, record: PatchRecord) -> None:
        """Record a patch copied into the patch store (the same name and version replaces its row)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO patches (name, version, type, description, file, sha256, size_bytes, "
                "signed_by, added_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    record.name,
                    record.version,
                    record.type,
                    record.description,
                    record.file,
                    record.sha256,
                    record.size_bytes,
                    record.signed_by,
                    record.added_at,
                ),
            )

    def patch(self, name: str, version: str) -> PatchRecord | None:
        row = self._db.execute("SELECT * FROM patches WHERE name=? AND version=?", (name, version)).fetchone()
        return PatchRecord(**dict(row)) if row else None

    def patches(self) -> list[PatchRecord]:
        rows = self._db.execute("SELECT * FROM patches ORDER BY name, added_at").fetchall()
        return [PatchRecord(**dict(r)) for r in rows]

    def start_patch_run(
        self, deployment: str, name: str, version: str, action: str, nodes: Iterable[str], snapshot: str
    ) -> PatchRun:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO patch_runs (deployment, name, version, action, nodes, snapshot, started_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (deployment, name, version, action, json.dumps(list(nodes)), snapshot, now()),
            )
            row = db.execute("SELECT * FROM patch_runs WHERE id=?", (cursor.lastrowid,)).fetchone()
        return PatchRun.from_row(row)

    def patch_node_done(self, run_id: int, node: str) -> None:
        """Record that ``node`` passed its check in run ``run_id`` (a resumed run skips it)."""
        with self.transaction() as db:
            row = db.execute("SELECT done FROM patch_runs WHERE id=?", (run_id,)).fetchone()
            done = json.loads(row["done"])
            if node not in done:
                done.append(node)
            db.execute("UPDATE patch_runs SET done=? WHERE id=?", (json.dumps(done), run_id))

    def patch_node_undone(self, run_id: int, node: str) -> None:
        """Record that ``node`` is back on its snapshot (a revert that resumes skips it)."""
        with self.transaction() as db:
            row = db.execute("SELECT done FROM patch_runs WHERE id=?", (run_id,)).fetchone()
            done = [n for n in json.loads(row["done"]) if n != node]
            db.execute("UPDATE patch_runs SET done=? WHERE id=?", (json.dumps(done), run_id))

    def start_patch_revert(self, run_id: int, failed_node: str | None, message: str) -> None:
        """Mark run ``run_id`` reverting, with ``failed_node`` (touched, so reverted too) among its
        nodes to revert, in one transaction."""
        with self.transaction() as db:
            row = db.execute("SELECT done FROM patch_runs WHERE id=?", (run_id,)).fetchone()
            done = json.loads(row["done"])
            if failed_node is not None and failed_node not in done:
                done.append(failed_node)
            db.execute(
                "UPDATE patch_runs SET status='reverting', done=?, message=? WHERE id=?",
                (json.dumps(done), message, run_id),
            )

    def finish_patch_run(self, run_id: int, status: str, message: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE patch_runs SET status=?, ended_at=?, message=? WHERE id=?", (status, now(), message, run_id)
            )

    def patch_runs(self, deployment: str | None = None) -> list[PatchRun]:
        """Every patch run, newest first (of one deployment when named)."""
        if deployment is None:
            rows = self._db.execute("SELECT * FROM patch_runs ORDER BY id DESC").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM patch_runs WHERE deployment=? ORDER BY id DESC", (deployment,)
            ).fetchall()
        return [PatchRun.from_row(r) for r in rows]

    def unfinished_patch_run(self, deployment: str) -> PatchRun | None:
        """The deployment's patch run that has not finished (its process died), if any."""
        row = self._db.execute(
            "SELECT * FROM patch_runs WHERE deployment=? AND status IN ('running', 'reverting') "
            "ORDER BY id DESC LIMIT 1",
            (deployment,),
        ).fetchone()
        return PatchRun.from_row(row) if row else None
