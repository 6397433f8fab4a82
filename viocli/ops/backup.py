"""``backup openstack_db|mgmt_server``, ``backup list``, ``backup verify``: backups on an NFS export.

Every backup is written into ``.partial-NAME`` on the target, its manifest last, and renamed to its
final name only once all of it is on stable storage; its catalog entry (state store) says running,
then complete or failed. A failed backup's directory is removed; one left by a killed viocli keeps its
``.partial-`` name (never complete-looking) and its catalog entry is marked failed by the next
operation on the deployment. After a complete backup, retention deletes the oldest complete backups
of the same kind and deployment beyond ``backup.retention``, never the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from viocli.backup import galera, oms_archive
from viocli.backup.manifest import Manifest, StoredFile, check_files, read_manifest, write_manifest
from viocli.backup.naming import MANIFEST, check_name, kind_of, new_name, partial, taken_at, unfinished
from viocli.backup.stream import node_to_target
from viocli.backup.target import BackupTarget, open_target, preflight
from viocli.errors import BadInput, OperationFailed, Refused, ViocliError
from viocli.health.shell import SshShell
from viocli.inventory.model import Backup
from viocli.logsetup import get_logger
from viocli.ops.configure import existing_deployment, status_refused
from viocli.ops.context import Deployment, deployment_name
from viocli.ops.operation import operation
from viocli.settings import Settings
from viocli.state.lock import DeploymentLock
from viocli.state.store import BackupRecord, StateStore, now

OMS = "(oms)"  # the catalog's deployment for mgmt_server backups: they hold every deployment
DB_FILE = "mariadb.mbstream.zst"
OMS_FILE = "oms.tar.gz.age"
# mariabackup copies the member's files as they are: its read lock is held by viocli's session.
MARIABACKUP = "mariabackup --backup --stream=mbstream --no-lock --parallel=2 --target-dir=/var/tmp --user=root"
BACKUPPABLE = ("running",)


def _quiet(_text: str) -> None:
    """The default ``say``: progress goes nowhere."""


@dataclass
class BackupResult:
    """A complete backup and what retention removed after it."""

    name: str
    kind: str
    target: str
    manifest: Manifest
    removed: list[str] = field(default_factory=list)


# --- shared steps -------------------------------------------------------------------------------
def target_spec(deployment: Deployment | None, given: str | None) -> str:
    """NFS_VOLUME as given, else the inventory's ``backup.nfs``; BadInput when there is neither."""
    if given:
        return given
    if deployment is not None and deployment.loaded.model.backup.nfs:
        return str(deployment.loaded.model.backup.nfs)
    raise BadInput(
        "no NFS_VOLUME given, and the inventory names no backup.nfs",
        hint="give it as host:/export (or an absolute directory), or set backup.nfs in the inventory",
    )


@contextmanager
def opened(spec: str) -> Iterator[BackupTarget]:
    """The target ``spec`` names (BadInput when malformed), closed afterwards."""
    target = open_target(spec)
    try:
        yield target
    finally:
        target.close()


def node_shell(settings: Settings, deployment: Deployment) -> SshShell:
    """SSH to the deployment's nodes with the OMS key and the deployment's known_hosts (root only)."""
    key = settings.state_dir / "ssh" / "id_ed25519"
    known_hosts = settings.deployment_dir(deployment.name) / "known_hosts"
    for path, what in ((key, "the OMS's SSH key"), (known_hosts, f"the known_hosts of {deployment.name}")):
        if not path.is_file():
            raise Refused(f"{what} ({path}) is missing", hint="sudo viocli deployment create -i FILE completes it")
    return SshShell(key, known_hosts, deployment.loaded.model.ssh_user)


def retention(deployment: Deployment) -> int:
    """How many backups of each kind to keep: custom.yml's backup_retention, else the inventory's."""
    value = deployment.loaded.custom_vars.get("backup_retention", deployment.loaded.model.backup.retention)
    return max(1, int(value))


def discard(target: BackupTarget, directory: str) -> None:
    """Remove a backup directory: first renamed to its partial name (so it never looks complete
    half-removed), then its files, then itself. Best effort on a directory that is already partial."""
    name = unfinished(directory)
    work = directory
    if name is None and kind_of(directory):
        work = partial(directory)
        target.rename(directory, work)
    for entry in target.listdir(work):
        target.remove(f"{work}/{entry}", missing_ok=True)
    target.rmdir(work)


def _discard_quietly(target: BackupTarget, directory: str) -> None:
    with contextlib.suppress(ViocliError, OSError):
        if target.exists(directory):
            discard(target, directory)


def _finish(
    store: StateStore,
    target: BackupTarget,
    work: str,
    manifest: Manifest,
    backup_id: int,
) -> None:
    """Write the manifest last, make the name final, and record the backup complete."""
    write_manifest(target, work, manifest)
    target.rename(work, manifest.name)
    store.finish_backup(backup_id, "complete", size_bytes=manifest.size, checksum=manifest.files[0].sha256)


def discard_failed(store: StateStore, target: BackupTarget, deployment: str) -> list[str]:
    """Remove the ``.partial-`` directories of the deployment's failed backups (a killed viocli left them)."""
    failed = {r.name for r in store.backups(deployment) if r.status == "failed"}
    removed = [entry for entry in target.listdir("") if unfinished(entry) in failed]
    for entry in removed:
        _discard_quietly(target, entry)
    return removed


@contextmanager
def _catalogued(store: StateStore, deployment: str, name: str, kind: str, target: BackupTarget) -> Iterator[int]:
    """A catalog entry that is marked failed (and the partial directory removed) when the body fails."""
    backup_id = store.start_backup(deployment, name, kind, target.spec)
    try:
        yield backup_id
    except BaseException as error:
        message = error.message if isinstance(error, ViocliError) else f"{type(error).__name__}: {error}"
        store.finish_backup(backup_id, "failed", message=message)
        _discard_quietly(target, partial(name))
        raise


def apply_retention(
    store: StateStore, target: BackupTarget, deployment: str, kind: str, keep: int, just_made: str
) -> list[str]:
    """Delete the oldest complete backups of ``kind`` made for ``deployment`` beyond ``keep``."""
    mine = []
    for entry in target.listdir(""):
        if kind_of(entry) != kind or entry == just_made:
            continue
        try:
            if read_manifest(target, entry).deployment == deployment:
                mine.append(entry)
        except ViocliError:
            continue  # not ours to judge: a directory without a readable manifest is left alone
    removed = sorted(mine)[: max(0, len(mine) + 1 - keep)]
    for name in removed:
        discard(target, name)
        store.forget_backup(deployment, name)
    return removed


# --- backup openstack_db ------------------------------------------------------------------------
def backup_openstack_db(
    settings: Settings, name: str | None, nfs_volume: str | None, *, say: Callable[[str], None] = _quiet
) -> BackupResult:
    """A hot backup of every database, taken on the least loaded Synced Galera member, streamed through
    zstd to the target. The target and the cluster are checked before anything is written."""
    log = get_logger()
    deployment, record = existing_deployment(settings, None, name, "back up")
    if record.status not in BACKUPPABLE:
        raise status_refused(deployment, record.status, "backup openstack_db", "it running")
    with (
        opened(target_spec(deployment, nfs_volume)) as target,
        operation(settings, deployment.name, "backup openstack_db") as op,
    ):
        preflight(target)
        discard_failed(op.store, target, deployment.name)
        shell = node_shell(settings, deployment)
        try:
            members = [n for n in deployment.nodes if "database" in n.groups]
            member = galera.choose_member(galera.member_states(shell, members))
            node = next(n for n in members if n.name == member.node)
            backup_name = new_name("openstack_db")
            work = partial(backup_name)
            say(
                f"backing up the databases on {node.name} ({member.connections} connections) to "
                f"{target.spec}/{backup_name}"
            )
            started = time.monotonic()
            with _catalogued(op.store, deployment.name, backup_name, "openstack_db", target) as backup_id:
                target.mkdir(work)
                frozen = galera.FrozenMember(shell, node)
                try:
                    frozen.freeze()
                    say(
                        f"{node.name} holds still at Galera position {frozen.position} ({frozen.state}); "
                        "streaming it and checksumming its tables"
                    )
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        sums = pool.submit(galera.table_checksums, shell, node)
                        streamed = node_to_target(
                            shell.stream_argv(node, MARIABACKUP),
                            target,
                            f"{work}/{DB_FILE}",
                            what=f"mariabackup on {node.name}",
                            log=log,
                        )
                        tables = sums.result()
                except BaseException:
                    frozen.abandon()
                    raise
                frozen.release()
                if not tables:
                    raise OperationFailed(f"no table was found to checksum on {node.name}")
                duration = time.monotonic() - started
                manifest = Manifest(
                    kind="openstack_db",
                    name=backup_name,
                    deployment=deployment.name,
                    created_at=now(),
                    duration_seconds=round(duration, 1),
                    files=[streamed.stored],
                    details={
                        "mariadb_version": frozen.version,
                        "member": node.name,
                        "galera_position": frozen.position,
                        "member_state": frozen.state,
                        "method": "mariabackup --stream=mbstream, zstd on the OMS",
                        "stream_seconds": round(streamed.seconds, 1),
                        "tables": tables,
                    },
                )
                _finish(op.store, target, work, manifest, backup_id)
            log.info(
                "backup %s complete: %d bytes (%d raw) in %.1f s",
                backup_name,
                manifest.size,
                streamed.stored.raw_size or 0,
                duration,
            )
            removed = apply_retention(
                op.store, target, deployment.name, "openstack_db", retention(deployment), backup_name
            )
        finally:
            shell.close()
    return BackupResult(backup_name, "openstack_db", target.spec, manifest, removed)


# --- backup mgmt_server -------------------------------------------------------------------------
def _only_deployment(settings: Settings, name: str | None) -> Deployment | None:
    """The deployment whose inventory names the default NFS volume, when one can be told."""
    reader = StateStore.open_readonly(settings.db_path)
    if reader is None:
        return None
    try:
        chosen = deployment_name(settings, name, reader) if name or len(reader.deployments()) == 1 else None
    finally:
        reader.close()
    if chosen is None:
        return None
    return existing_deployment(settings, None, chosen, "back up")[0]


def backup_mgmt_server(
    settings: Settings,
    name: str | None,
    nfs_volume: str | None,
    passphrase: str,
    *,
    say: Callable[[str], None] = _quiet,
) -> BackupResult:
    """Everything that rebuilds this OMS, encrypted with ``passphrase``, as ``vio_ms_YYYYmmddHHMMSS``."""
    if not settings.db_path.exists():
        raise Refused(f"this OMS has no state to back up ({settings.db_path} does not exist)")
    deployment = _only_deployment(settings, name)
    with opened(target_spec(deployment, nfs_volume)) as target:
        preflight(target)
        started = time.monotonic()
        archive, archived = oms_archive.build(settings)
        encrypted = oms_archive.encrypt(archive, passphrase)
        backup_name = new_name("mgmt_server")
        work = partial(backup_name)
        say(f"backing up {len(archived)} files of this OMS to {target.spec}/{backup_name} (encrypted)")
        store = StateStore.open_writable(settings.db_path)
        try:
            with _catalogued(store, OMS, backup_name, "mgmt_server", target) as backup_id:
                target.mkdir(work)
                size = target.write_stream(f"{work}/{OMS_FILE}", io.BytesIO(encrypted))
                stored = StoredFile(OMS_FILE, size, hashlib.sha256(encrypted).hexdigest(), raw_size=len(archive))
                manifest = Manifest(
                    kind="mgmt_server",
                    name=backup_name,
                    deployment=OMS,
                    created_at=now(),
                    duration_seconds=round(time.monotonic() - started, 1),
                    files=[stored],
                    details={
                        "encryption": "age (scrypt passphrase)",
                        "state_dir": str(settings.state_dir),
                        "deployments": [d.name for d in store.deployments()],
                        "files": len(archived),
                    },
                )
                _finish(store, target, work, manifest, backup_id)
            keep = retention(deployment) if deployment is not None else Backup().retention
            removed = apply_retention(store, target, OMS, "mgmt_server", keep, backup_name)
        finally:
            store.close()
    return BackupResult(backup_name, "mgmt_server", target.spec, manifest, removed)


# --- backup list ----------------------------------------------------------------------------------
@dataclass
class ListedBackup:
    """A backup as ``backup list`` shows it."""

    name: str
    kind: str
    deployment: str
    state: str  # complete, verified, failed, running, incomplete (a .partial- directory on the export)
    size_bytes: int | None
    duration_seconds: float | None
    created_at: str | None
    where: str  # catalog, export, or both
    message: str | None = None


def list_backups(settings: Settings, name: str | None, nfs_volume: str | None) -> list[ListedBackup]:
    """The deployment's and the OMS's backups in the catalog, merged with what the export holds."""
    reader = StateStore.open_readonly(settings.db_path)
    records: list[BackupRecord] = []
    dname: str | None = None
    try:
        if reader is not None:
            known = reader.deployments()
            if name or known:
                dname = deployment_name(settings, name, reader) if (name or len(known) == 1) else None
            for deployment in [dname] if dname else [d.name for d in known]:
                records += reader.backups(deployment)
            records += reader.backups(OMS)
    finally:
        if reader is not None:
            reader.close()
    listed: dict[str, ListedBackup] = {}
    for record in records:
        state = record.status
        if state == "running" and record.deployment != OMS:
            holder = DeploymentLock(settings.state_dir / "locks", record.deployment).live_holder()
            if holder is None:
                state = "failed"
        listed[record.name] = ListedBackup(
            record.name,
            record.kind,
            record.deployment,
            state,
            record.size_bytes,
            _seconds(record),
            record.started_at,
            "catalog",
            record.message if state != "complete" else None,
        )
    if nfs_volume:
        with opened(nfs_volume) as target:
            for entry in target.listdir(""):
                _merge_entry(target, entry, listed, dname)
    return sorted(listed.values(), key=lambda b: (b.created_at or "", b.name), reverse=True)


def _seconds(record: BackupRecord) -> float | None:
    if not record.completed_at:
        return None
    start = datetime.fromisoformat(record.started_at)
    end = datetime.fromisoformat(record.completed_at)
    return (end - start).total_seconds()


def _merge_entry(target: BackupTarget, entry: str, listed: dict[str, ListedBackup], deployment: str | None) -> None:
    pending = unfinished(entry)
    if pending is not None:
        known = listed.get(pending)
        if known is not None:
            known.where = "both"
            if known.state == "complete":
                known.state = "incomplete"
        else:
            listed[pending] = ListedBackup(
                pending,
                kind_of(pending) or "?",
                "?",
                "incomplete",
                None,
                None,
                taken_at(pending),
                "export",
                "an unfinished backup (no manifest)",
            )
        return
    kind = kind_of(entry)
    if kind is None:
        return
    try:
        manifest = read_manifest(target, entry)
    except ViocliError as error:
        listed[entry] = ListedBackup(
            entry, kind, "?", "incomplete", None, None, taken_at(entry), "export", error.message
        )
        return
    if deployment is not None and manifest.deployment not in (deployment, OMS):
        return
    known = listed.get(entry)
    if known is not None:
        known.where = "both"
        known.size_bytes = manifest.size
        known.duration_seconds = manifest.duration_seconds
    else:
        listed[entry] = ListedBackup(
            entry,
            kind,
            manifest.deployment,
            "complete",
            manifest.size,
            manifest.duration_seconds,
            manifest.created_at,
            "export",
        )


# --- backup verify --------------------------------------------------------------------------------
@dataclass
class VerifyResult:
    """What ``backup verify`` checked."""

    name: str
    manifest: Manifest
    files: int
    bytes_read: int
    restore_test: dict[str, Any] | None = None


def load_backup(target: BackupTarget, backup_name: str) -> Manifest:
    """The manifest of a complete backup on ``target``; OperationFailed naming what is wrong."""
    if not target.is_dir(backup_name):
        if target.exists(partial(backup_name)):
            raise OperationFailed(
                f"{target.spec}: {backup_name} never completed (only {partial(backup_name)} exists): it cannot be used"
            )
        raise BadInput(
            f"{target.spec}: no backup named {backup_name}", hint=f"list them with: viocli backup list {target.spec}"
        )
    if not target.exists(f"{backup_name}/{MANIFEST}"):
        raise OperationFailed(f"{target.spec}: {backup_name} has no {MANIFEST}: it is not complete")
    manifest = read_manifest(target, backup_name)
    if manifest.name != backup_name or manifest.kind != kind_of(backup_name):
        raise OperationFailed(f"{target.spec}: {backup_name}'s manifest is for {manifest.kind} {manifest.name}")
    return manifest


def verify_files(target: BackupTarget, backup_name: str) -> Manifest:
    """Re-read every file of the backup against its manifest; OperationFailed listing what differs."""
    manifest = load_backup(target, backup_name)
    problems = check_files(target, backup_name, manifest)
    if problems:
        raise OperationFailed(
            f"backup {backup_name} on {target.spec} does not verify: {'; '.join(problems)}",
            hint="do not restore it; take a new backup, or verify another one (viocli backup list)",
        )
    return manifest


def verify(
    settings: Settings,
    name: str | None,
    backup_name: str,
    nfs_volume: str | None,
    *,
    restore_test: bool = False,
    say: Callable[[str], None] = _quiet,
) -> VerifyResult:
    """Check a backup's files against its manifest and, with ``restore_test``, restore an openstack_db
    backup into a throwaway MariaDB on a database node and compare its table checksums."""
    check_name(backup_name)
    deployment = _only_deployment(settings, name)
    with opened(target_spec(deployment, nfs_volume)) as target:
        say(f"re-reading {backup_name} on {target.spec}")
        try:
            manifest = verify_files(target, backup_name)
        except OperationFailed as error:
            _mark(settings, backup_name, "failed", error.message)
            raise
        tested = None
        if restore_test:
            if manifest.kind != "openstack_db":
                raise BadInput(f"--restore-test applies to openstack_db backups; {backup_name} is {manifest.kind}")
            if deployment is None:
                raise BadInput("--restore-test needs the deployment whose database node runs it: give -d NAME")
            from viocli.ops.restore import restore_test as run_restore_test

            try:
                tested = run_restore_test(settings, deployment, target, manifest, say=say)
            except OperationFailed as error:
                _mark(settings, backup_name, "failed", error.message)
                raise
        _mark(settings, backup_name, "verified", None, manifest, target.spec)
    return VerifyResult(backup_name, manifest, len(manifest.files), manifest.size, tested)


def _mark(
    settings: Settings,
    backup_name: str,
    status: str,
    message: str | None,
    manifest: Manifest | None = None,
    spec: str | None = None,
) -> None:
    """Record a verify's outcome in the catalog (root only; others only read)."""
    try:
        store = StateStore.open_writable(settings.db_path)
    except (OSError, ViocliError):
        return
    try:
        record = store.backup_named(backup_name)
        if record is not None:
            store.set_backup_status(record.deployment, backup_name, status, message)
        elif manifest is not None and spec is not None:
            store.record_backup(catalog_record(manifest, spec, status, message))
    finally:
        store.close()


def catalog_record(manifest: Manifest, spec: str, status: str, message: str | None = None) -> BackupRecord:
    """The catalog entry of a finished backup found on ``spec`` (made by another OMS, or before a restore)."""
    checksum = manifest.files[0].sha256 if manifest.files else None
    return BackupRecord(
        0,
        manifest.deployment,
        manifest.name,
        manifest.kind,
        spec,
        manifest.created_at,
        manifest.created_at,
        status,
        manifest.size,
        checksum,
        message,
    )
