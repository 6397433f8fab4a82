"""``restore openstack_db|mgmt_server BACKUP NFS_VOLUME`` and ``backup verify --restore-test``.

openstack_db: the backup is verified against its manifest (one that does not verify is refused), the
operator confirms, and it is unpacked and prepared on the first database node beside the running
database (the deployment keeps serving meanwhile). Only then do the OpenStack services stop; Galera
stops, starts again from the restored data and the other members join it one at a time
(restore.yml); the restored tables are checked against the backup's checksums before the services
start again, and ``deployment status`` ends the command.

mgmt_server: the encrypted archive is verified and decrypted, and every file goes back where it was,
as it was; an OMS that already has deployments is only replaced with ``--force`` (its state is kept
aside).
"""

from __future__ import annotations

import io
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viocli.atomic import write_atomic
from viocli.backup import galera, oms_archive
from viocli.backup.manifest import Manifest
from viocli.backup.naming import check_name
from viocli.backup.stream import target_to_node
from viocli.backup.target import BackupTarget
from viocli.errors import OperationFailed, Refused
from viocli.health.shell import SshShell
from viocli.inventory.topology import Node
from viocli.logsetup import get_logger
from viocli.ops import plans
from viocli.ops.ansible import run_ansible
from viocli.ops.backup import OMS_FILE, catalog_record, node_shell, opened, target_spec, verify_files
from viocli.ops.configure import existing_deployment, status_refused
from viocli.ops.context import Deployment
from viocli.ops.lifecycle import HEALTH_WAIT_SECONDS, health_report
from viocli.ops.operation import operation
from viocli.ops.status import StatusReport
from viocli.services import load_services
from viocli.settings import Settings
from viocli.state.store import StateStore

STAGE = "/var/lib/mysql-restore"  # on the datadir's file system: the playbook moves it into place
PREVIOUS = "/var/lib/mysql-before-restore"
TEST_DIR = "/var/tmp/viocli-restore-test"
TEST_UNIT = "viocli-restore-test"
# The OpenStack services stop while their database is replaced: everything on controllers and computes
# (memcached too: it caches what the old database said).
STOPPED_GROUPS = ("controller", "compute")


def _quiet(_text: str) -> None:
    """The default ``say``: progress goes nowhere."""


def _unpack(shell: SshShell, node: Node, target: BackupTarget, manifest: Manifest, directory: str) -> float:
    """Stream the backup into ``directory`` on ``node`` and prepare it there (mariabackup --prepare)."""
    log = get_logger()
    stored = manifest.files[0]
    quoted = shlex.quote(directory)
    unpack = f"rm -rf {quoted} && mkdir -p {quoted} && mbstream -x -C {quoted}"
    streamed = target_to_node(
        target,
        f"{manifest.name}/{stored.name}",
        shell.stream_argv(node, unpack, stdin=True),
        what=f"unpacking {manifest.name} on {node.name}",
        expect=stored,
        log=log,
    )
    started = time.monotonic()
    prepared = shell.run(
        node, f"mariabackup --prepare --target-dir={quoted} 2>&1 | tail -n 5; test -f {quoted}/ibdata1", timeout=3600
    )
    if prepared.rc != 0:
        raise OperationFailed(f"mariabackup --prepare of {manifest.name} on {node.name} failed: {prepared.reason()}")
    return streamed.seconds + time.monotonic() - started


def _compare(manifest: Manifest, found: dict[str, Any], where: str) -> int:
    """The number of tables checked; OperationFailed listing those that differ from the manifest."""
    expected = manifest.details.get("tables") or {}
    problems = galera.compare_checksums(expected, found)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise OperationFailed(f"{where}: {len(problems)} of {len(expected)} tables differ from the backup: {shown}")
    return len(expected)


# --- backup verify --restore-test --------------------------------------------------------------
def restore_test(
    settings: Settings,
    deployment: Deployment,
    target: BackupTarget,
    manifest: Manifest,
    *,
    say: Callable[[str], None] = _quiet,
) -> dict[str, Any]:
    """Restore ``manifest``'s backup into a throwaway MariaDB (no network, no Galera) on the least loaded
    database node, compare every table's checksum with the manifest, and remove it all."""
    shell = node_shell(settings, deployment)
    members = [n for n in deployment.nodes if "database" in n.groups]
    try:
        chosen = galera.choose_member(galera.member_states(shell, members))
        node = next(n for n in members if n.name == chosen.node)
        say(f"restoring {manifest.name} into a throwaway MariaDB on {node.name}")
        data = f"{TEST_DIR}/data"
        socket = f"{TEST_DIR}/mysqld.sock"
        try:
            shell.run(node, f"systemctl stop {TEST_UNIT} 2>/dev/null; rm -rf {TEST_DIR}", timeout=60)
            seconds = _unpack(shell, node, target, manifest, data)
            start = (
                f"chown -R mysql:mysql {TEST_DIR} && systemd-run --unit={TEST_UNIT} --collect --quiet "
                f"/usr/sbin/mariadbd --no-defaults --user=mysql --datadir={data} --socket={socket} "
                f"--pid-file={TEST_DIR}/mysqld.pid --skip-networking --wsrep-on=OFF --innodb-buffer-pool-size=128M "
                f"--log-error={TEST_DIR}/error.log && for i in $(seq 120); do "
                f"mariadb --socket={socket} -e 'SELECT 1' >/dev/null 2>&1 && exit 0; sleep 0.5; done; "
                f"tail -n 3 {TEST_DIR}/error.log; exit 1"
            )
            started = shell.run(node, start, timeout=90)
            if started.rc != 0:
                raise OperationFailed(f"the throwaway MariaDB on {node.name} did not start: {started.reason()}")
            found = galera.table_checksums(shell, node, socket)
            tables = _compare(manifest, found, f"restore test of {manifest.name} on {node.name}")
        finally:
            shell.run(node, f"systemctl stop {TEST_UNIT} 2>/dev/null; rm -rf {TEST_DIR}", timeout=120)
        say(f"restore test passed: {tables} tables match the backup's checksums")
        return {"node": node.name, "tables": tables, "seconds": round(seconds, 1)}
    finally:
        shell.close()


# --- restore openstack_db -----------------------------------------------------------------------
@dataclass
class RestoreResult:
    """What ``restore openstack_db`` did."""

    name: str
    node: str
    tables: int
    unpack_seconds: float
    downtime_seconds: float
    report: StatusReport


def verified_backup(target: BackupTarget, backup_name: str, deployment: str) -> Manifest:
    """The manifest of ``backup_name`` once every file verified and it is ``deployment``'s; else Refused."""
    try:
        manifest = verify_files(target, backup_name)
    except OperationFailed as error:
        raise Refused(f"refusing to restore: {error.message}", hint=error.hint) from None
    if manifest.deployment != deployment:
        raise Refused(
            f"{backup_name} is a backup of deployment {manifest.deployment}, not of {deployment}",
            hint="restore a backup of this deployment (viocli backup list)",
        )
    return manifest


def restore_galera(
    settings: Settings,
    deployment: Deployment,
    target: BackupTarget,
    manifest: Manifest,
    node: Node,
    *,
    say: Callable[[str], None] = _quiet,
    verbosity: int = 0,
) -> tuple[int, float, float]:
    """The restore itself, under the caller's lock, for ``restore openstack_db`` and ``recover -r DB``:
    unpack and prepare on ``node`` while serving, stop the OpenStack services, restart Galera from the
    backup (restore.yml), compare every table with the backup's checksums, start the services.

    Returns (tables checked, unpack seconds, seconds the OpenStack services were down).
    """
    stopped = [s.name for s in load_services() if s.group in STOPPED_GROUPS]
    shell = node_shell(settings, deployment)
    try:
        say(f"unpacking and preparing {manifest.name} on {node.name} (the deployment keeps serving)")
        unpack_seconds = _unpack(shell, node, target, manifest, STAGE)
        down = time.monotonic()
        say(f"stopping the OpenStack services: {', '.join(stopped)}")
        run_ansible(settings, deployment, plans.services(deployment, "stop", services=stopped), verbosity=verbosity)
        say(f"restoring Galera from {node.name}; the other members join it one at a time")
        run_ansible(settings, deployment, plans.restore_db(deployment, node.name, STAGE), verbosity=verbosity)
        tables = _compare(manifest, galera.table_checksums(shell, node), f"restored database on {node.name}")
        say(f"{tables} tables match the backup's checksums")
        shell.run(node, f"rm -rf {PREVIOUS}", timeout=600)
        say("starting the OpenStack services")
        run_ansible(settings, deployment, plans.start(deployment), verbosity=verbosity)
        return tables, unpack_seconds, time.monotonic() - down
    finally:
        shell.close()


def restore_openstack_db(
    settings: Settings,
    name: str | None,
    backup_name: str,
    nfs_volume: str | None,
    *,
    confirm: Callable[[list[str]], bool],
    say: Callable[[str], None] = _quiet,
    verbosity: int = 0,
) -> RestoreResult:
    """Replace the deployment's databases with an openstack_db backup (see the module's docstring)."""
    check_name(backup_name, "openstack_db")
    deployment, record = existing_deployment(settings, None, name, "restore")
    if record.status != "running":
        raise status_refused(deployment, record.status, "restore openstack_db", "it running")
    dname = deployment.name
    with (
        opened(target_spec(deployment, nfs_volume)) as target,
        operation(settings, dname, "restore openstack_db") as op,
    ):
        say(f"verifying {backup_name} on {target.spec}")
        manifest = verified_backup(target, backup_name, dname)
        node = next(n for n in deployment.nodes if "database" in n.groups)
        stopped = [s.name for s in load_services() if s.group in STOPPED_GROUPS]
        lines = [
            f"restore openstack_db {backup_name} (taken {manifest.created_at} on {manifest.details.get('member')}, "
            f"Galera position {manifest.details.get('galera_position')}) into deployment {dname}:",
            "  every change made to the OpenStack databases since then is lost;",
            f"  the OpenStack APIs stop ({', '.join(stopped)}) while Galera restarts from it on {node.name}",
        ]
        if not confirm(lines):
            raise Refused("restore cancelled; nothing was changed")
        tables, unpack_seconds, downtime = restore_galera(
            settings, deployment, target, manifest, node, say=say, verbosity=verbosity
        )
        op.store.set_deployment_status(dname, "running")
        report = health_report(settings, dname, say, HEALTH_WAIT_SECONDS)
        if report.failed:
            raise OperationFailed(
                f"deployment {dname}: {backup_name} was restored but the deployment is not healthy: "
                f"{', '.join(r.collector_name for r in report.failed)} report FAILURE",
                hint="run the action of each FAILURE (sudo viocli deployment status)",
            )
    return RestoreResult(backup_name, node.name, tables, unpack_seconds, downtime, report)


# --- restore mgmt_server ------------------------------------------------------------------------
@dataclass
class OmsRestoreResult:
    """What ``restore mgmt_server`` put back."""

    name: str
    files: int
    deployments: list[str]
    kept_aside: Path | None


def restore_mgmt_server(
    settings: Settings,
    backup_name: str,
    nfs_volume: str,
    passphrase: str,
    *,
    force: bool = False,
    say: Callable[[str], None] = _quiet,
) -> OmsRestoreResult:
    """Put back every file of a mgmt_server backup where it was, as it was."""
    check_name(backup_name, "mgmt_server")
    with opened(nfs_volume) as target:
        say(f"verifying {backup_name} on {target.spec}")
        try:
            manifest = verify_files(target, backup_name)
        except OperationFailed as error:
            raise Refused(f"refusing to restore: {error.message}", hint=error.hint) from None
        sink = io.BytesIO()
        target.read_stream(f"{backup_name}/{OMS_FILE}", sink)
    where = f"{target.spec} {backup_name}"
    archive = oms_archive.decrypt(sink.getvalue(), passphrase, where)
    inner, contents = oms_archive.read_manifest(archive, where)
    existing = _existing_deployments(settings)
    if existing and not force:
        raise Refused(
            f"this OMS already has deployments ({', '.join(existing)}); restoring {backup_name} replaces its state",
            hint="pass --force to replace it (the current state is kept aside in a directory next to it)",
        )
    kept = _keep_aside(settings)
    restored = 0
    for entry in inner["files"]:
        destination = _destination(settings, inner, entry)
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(destination, contents[entry["member"]], entry["mode"])
        restored += 1
    store = StateStore.open_writable(settings.db_path)
    try:
        deployments = [d.name for d in store.deployments()]
        store.record_backup(catalog_record(manifest, target.spec, "verified"))
    finally:
        store.close()
    say(f"restored {restored} files: deployments {', '.join(deployments) or 'none'}")
    return OmsRestoreResult(backup_name, restored, deployments, kept)


def _existing_deployments(settings: Settings) -> list[str]:
    reader = StateStore.open_readonly(settings.db_path)
    if reader is None:
        return []
    try:
        return [d.name for d in reader.deployments()]
    finally:
        reader.close()


def _keep_aside(settings: Settings) -> Path | None:
    """Move the OMS's current state files (not the lab's) into ``<state_dir>.replaced-<time>``."""
    aside = settings.state_dir.with_name(f"{settings.state_dir.name}.replaced-{time.strftime('%Y%m%d%H%M%S')}")
    moved = False
    for part in ("viocli.db", "deployments", "ssh"):
        source = settings.state_dir / part
        if source.exists():
            aside.mkdir(mode=0o700, exist_ok=True)
            shutil.move(str(source), str(aside / part))
            moved = True
    return aside if moved else None


def _destination(settings: Settings, inner: dict[str, Any], entry: dict[str, Any]) -> Path:
    """Where an archived file goes: state files under this OMS's state dir, others where they were."""
    member = entry["member"]
    if ".." in Path(member).parts or ".." in Path(entry["origin"]).parts or not Path(entry["origin"]).is_absolute():
        raise OperationFailed(f"the OMS backup names a file outside its places: {member} ({entry['origin']})")
    if member.startswith("state/"):
        return settings.state_dir / member.removeprefix("state/")
    if member.startswith("config/"):
        return settings.config_file
    return Path(entry["origin"])
