"""``patch add|list|install|uninstall``, kayobe style: real small patches (node packages made with
dpkg-deb, patches built and signed by viocli.patch.package), ansible-runner faked at ansible_runner.run
(each run checked as it gets it: playbook, limit, extra vars), vCenter's sessions, VMs and snapshots,
SSH (the df of each node), the health reports and the database backup faked, each recording what it
was asked, in order.

The patch format itself is tested in tests/unit/test_patch_package.py, the snapshots against the
simulator in tests/vsphere, the playbook in the lab.
"""

from __future__ import annotations

import os
import shutil
from collections import namedtuple
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from viocli.cli.main import cli
from viocli.errors import BadInput, OperationFailed, Refused
from viocli.health.shell import CommandResult
from viocli.ops import patch as ops_patch
from viocli.ops.backup import OMS
from viocli.ops.configure import existing_deployment
from viocli.ops.status import StatusReport
from viocli.patch.package import build_patch
from viocli.state.store import BackupRecord, PatchRun, StateStore

from .test_command_playbooks import FakeRunner, _read
from .test_lifecycle import NAME, REPO, Env, failed, report
from .test_patch_package import edit_data, node_package, payload, write_keys

PATCH, VERSION = "vio-patch-1", "1.0.1"  # the names test_patch_package's tampering helpers know
KEY = f"{PATCH}_{VERSION}"
SNAPSHOT = f"viocli-patch-{KEY}"
UNSNAPSHOT = f"viocli-unpatch-{KEY}"
KEYSTONE_NEW = ("python3-keystone", "2:22.0.2-0+deb12u6+viocli1")
KEYSTONE_OLD = ("python3-keystone", "2:22.0.2-0+deb12u5")
NOVA_NEW = ("python3-nova", "2:26.2.2-1~deb12u3+viocli1")
CONTROLLERS = ["controller01", "controller02"]
WIDE = [  # a patch for loadbalancer, database and controller: its nodes in patch order
    "loadbalancer01",
    "loadbalancer02",
    "database01",
    "database02",
    "database03",
    "controller01",
    "controller02",
]
PLENTY_KIB = 10 << 20  # 10 GiB free in /var/lib
INSTALL_TASK = "Install the patch's packages from the staged repository"
PATCH_VARS = ("patch_key", "patch_packages", "patch_repo", "patch_keep_dir", "patch_keep_nodes", "patch_playbook",
              "patch_restart")  # fmt: skip
ROLE_DEFAULTS = {
    key: value
    for key, value in yaml.safe_load((REPO / "playbooks/roles/patch/defaults/main.yml").read_text()).items()
    if key in PATCH_VARS
}


# --- the patches, built once ---------------------------------------------------------------------
@dataclass(frozen=True)
class Kit:
    public_key: Path  # the publisher's key, trusted on the OMS
    signed: Path  # vio-patch-1 1.0.1 for controller: python3-keystone, with a playbook, signed
    unsigned: Path  # the same patch, not signed
    other: Path  # a different file of vio-patch-1 1.0.1 (another description), signed
    second: Path  # vio-patch-2 1.0.0 for controller, signed
    wide: Path  # vio-patch-3 1.0.0 for controller, loadbalancer and database, signed
    old: Path  # python3-keystone at the version before the patch (what a node keeps)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    root = tmp_path_factory.mktemp("kit")
    private, public, _ = write_keys(root / "keys", "publisher", "openssh")
    keystone = node_package(root / "debs", *KEYSTONE_NEW)
    nova = node_package(root / "debs", *NOVA_NEW)
    old = node_package(root / "old", *KEYSTONE_OLD)
    playbook = root / "playbook.yml"
    playbook.write_text("- name: Nothing to do\n  ansible.builtin.debug:\n    msg: patched\n")

    def build(out: str, signed: bool = True, **overrides: Any) -> Path:
        arguments: dict[str, Any] = {
            "name": PATCH,
            "version": VERSION,
            "type": "openstack",
            "description": "Keystone fix",
            "roles": ["controller"],
            "packages": [keystone],
            "restart": ["keystone"],
            "playbook": playbook,
            "signing_key": private if signed else None,
        }
        arguments.update(overrides)
        return build_patch(root / out, **arguments)

    return Kit(
        public_key=public,
        signed=build("signed"),
        unsigned=build("unsigned", signed=False),
        other=build("other", description="Keystone fix, rebuilt"),
        second=build("second", name="vio-patch-2", version="1.0.0", packages=[nova], restart=[], playbook=None),
        wide=build("wide", name="vio-patch-3", version="1.0.0", roles=["controller", "loadbalancer", "database"]),
        old=old,
    )


# --- the fakes -----------------------------------------------------------------------------------
class PatchRunner(FakeRunner):
    """ansible_runner.run: records each run and its step (playbook, limit, viocli_action) in the shared
    call list; a step in ``failing`` replays that failure instead of a success."""

    def __init__(self, calls: list[Any]):
        super().__init__()
        self.log = calls
        self.ok = (self.events, self.status, self.rc)
        self.failing: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.meanwhile: dict[tuple[str, str | None, str], Any] = {}  # what a step does on the OMS

    def __call__(self, **kwargs: Any):
        action = _read(Path(kwargs["private_data_dir"]) / "env" / "extravars")["viocli_action"]
        step = (kwargs["playbook"], kwargs["limit"], action)
        self.log.append(("run", *step))
        if step in self.meanwhile:
            self.meanwhile[step]()
        outcome = self.failing.get(step)
        self.events, self.status, self.rc = (
            (outcome["events"], outcome["status"], outcome["rc"]) if outcome else self.ok
        )
        return super().__call__(**kwargs)


class DfShell:
    """SSH to the nodes: answers ``df -Pk /var/lib | tail -n 1`` with ``free`` KiB available."""

    def __init__(self, calls: list[Any], free: dict[str, int]):
        self.calls, self.free = calls, free

    def run(self, node, command: str, timeout: float = 30) -> CommandResult:
        assert command == "df -Pk /var/lib | tail -n 1"
        self.calls.append(("df", node.name))
        return CommandResult(0, f"/dev/sda1 20971520 1048576 {self.free.get(node.name, PLENTY_KIB)} 5% /\n", "")

    def close(self) -> None:
        pass


class PatchEnv(Env):
    """The HA deployment of test_lifecycle (running), the publisher's key trusted, everything outside faked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, example, kit: Kit):
        super().__init__(monkeypatch, example)
        self.kit = kit
        self.free: dict[str, int] = {}
        self.health: list[StatusReport] = []  # what health_report gives next (then a healthy one)
        self.asked: list[list[str]] = []
        self.said: list[str] = []
        keys = ops_patch.trusted_keys_dir(self.settings)
        keys.mkdir(parents=True)
        shutil.copy(kit.public_key, keys / "publisher.pub")
        monkeypatch.setattr(ops_patch, "vcenter_session", self.vcenter.session)
        monkeypatch.setattr(
            ops_patch, "locate_vms", lambda si, store, dep: self.vcenter.find_vms(si, "DC01", dep.nodes, {})
        )
        monkeypatch.setattr(ops_patch, "take_snapshots", self._take)
        monkeypatch.setattr(ops_patch, "revert_to_snapshot", self._revert)
        monkeypatch.setattr(ops_patch, "remove_snapshots", self._remove)
        monkeypatch.setattr(ops_patch, "node_shell", lambda settings, deployment: DfShell(self.calls, self.free))
        monkeypatch.setattr(ops_patch, "wait_for_ssh", lambda addresses: self.calls.append(("ssh", sorted(addresses))))
        monkeypatch.setattr(ops_patch, "deployment_status", self._status)
        monkeypatch.setattr(ops_patch, "health_report", self._health)
        monkeypatch.setattr(ops_patch, "backup_openstack_db", self._backup)

    def use_runner(self, **kwargs: Any) -> PatchRunner:
        self.runner = PatchRunner(self.calls)
        self.monkeypatch.setattr("ansible_runner.run", self.runner)
        return self.runner

    # fakes
    def _take(self, si, vms, name: str, description: str) -> dict[str, Any]:
        self.calls.append(("snapshot", [v.node for v in vms], name))
        return {v.node: object() for v in vms}

    def _revert(self, si, vm, name: str, *, power_on: bool = True) -> None:
        assert power_on
        self.calls.append(("revert", vm.node, name))

    def _remove(self, si, vms, name: str) -> list[str]:
        self.calls.append(("remove", [v.node for v in vms], name))
        return [v.node for v in vms]

    def _health(self, settings, name: str, say, wait: float) -> StatusReport:
        assert name == NAME
        self.calls.append("health")
        return self.health.pop(0) if self.health else report()

    def _backup(self, settings, name: str | None, nfs_volume: str | None, *, say) -> SimpleNamespace:
        self.calls.append(("backup", name, nfs_volume))
        return SimpleNamespace(name="vio_os_db_20261201000000", target=nfs_volume)

    # commands
    def add(self, location: Path | None = None, **kwargs: Any) -> ops_patch.AddResult:
        return ops_patch.add(self.settings, location or self.kit.signed, **kwargs)

    def _confirm(self, lines: list[str]) -> bool:
        self.asked.append(lines)
        return True

    def install(self, name: str = PATCH, version: str = VERSION, **kwargs: Any) -> ops_patch.PatchResult:
        kwargs.setdefault("assume_yes", True)
        kwargs.setdefault("confirm", self._confirm)
        return ops_patch.install(self.settings, name, version, NAME, say=self.said.append, **kwargs)

    def uninstall(self, name: str = PATCH, version: str = VERSION, **kwargs: Any) -> ops_patch.PatchResult:
        kwargs.setdefault("assume_yes", True)
        kwargs.setdefault("confirm", self._confirm)
        return ops_patch.uninstall(self.settings, name, version, NAME, say=self.said.append, **kwargs)

    # what happened
    def steps(self) -> list[tuple[str, str | None, str]]:
        """Every playbook run: (playbook, limit, viocli_action)."""
        return [c[1:] for c in self.calls if isinstance(c, tuple) and c[0] == "run"]

    def extravars(self, index: int) -> dict[str, Any]:
        """The extra vars of the ``index``-th run, as Ansible got them."""
        return self.runner.calls[index]["extravars_file"]

    def patch_vars(self, index: int) -> dict[str, Any]:
        """The patch role's variables in the ``index``-th run (a patch.yml run), as its tasks see them:
        the extra vars over the role's defaults (viocli may leave an empty one to its default)."""
        assert self.runner.calls[index]["playbook"] == "patch.yml"
        return {**ROLE_DEFAULTS, **self.extravars(index)}

    def patch_runs(self) -> list[PatchRun]:
        store = StateStore.open_readonly(self.settings.db_path)
        try:
            return store.patch_runs(NAME)
        finally:
            store.close()

    def start_run(self, done: list[str], status: str = "running", message: str | None = None) -> PatchRun:
        """A run left by a viocli that was killed: ``done`` recorded, ``status`` as it was."""
        store = StateStore.open_writable(self.settings.db_path)
        try:
            run = store.start_patch_run(NAME, PATCH, VERSION, "install", CONTROLLERS, SNAPSHOT)
            for node in done:
                store.patch_node_done(run.id, node)
            if status != "running":
                assert status == "reverting", status
                store.start_patch_revert(run.id, None, message or "")
            return run
        finally:
            store.close()

    def recent_backup(
        self, completed: datetime | None = None, status: str = "complete", name: str = "vio_os_db_20261130000000"
    ) -> None:
        store = StateStore.open_writable(self.settings.db_path)
        try:
            when = (completed or datetime.now(UTC)).replace(microsecond=0).isoformat()
            store.record_backup(
                BackupRecord(0, NAME, name, "openstack_db", "10.0.0.5:/vio_backup", when, when, status, 1, None, None)
            )
        finally:
            store.close()

    @property
    def store_dir(self) -> Path:
        return self.settings.state_dir / "patches"

    @property
    def previous(self) -> Path:
        return self.store_dir / KEY / "previous" / NAME

    def keep_old(self, nodes: list[str]) -> None:
        """What install's stage fetched from ``nodes``: python3-keystone at the version before the patch."""
        for node in nodes:
            (self.previous / node).mkdir(parents=True, exist_ok=True)
            shutil.copy(self.kit.old, self.previous / node / self.kit.old.name)


@pytest.fixture
def env(viocli_env, example, monkeypatch: pytest.MonkeyPatch, kit: Kit) -> PatchEnv:
    return PatchEnv(monkeypatch, example, kit)


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def _deb_name(package: tuple[str, str]) -> str:
    return f"{package[0]}_{package[1].replace(':', '%3a')}_all.deb"


def _packages(nodes: list[str], package: tuple[str, str]) -> dict[str, list[dict[str, str]]]:
    return {node: [{"package": package[0], "version": package[1]}] for node in nodes}


def _install_vars(env: PatchEnv, action: str, keep: list[str]) -> dict[str, Any]:
    return {
        "patch_key": KEY,
        "patch_packages": _packages(CONTROLLERS, KEYSTONE_NEW),
        "patch_repo": str(env.store_dir / KEY / "repo"),
        "patch_keep_dir": str(env.previous),
        "patch_keep_nodes": keep,
        "patch_playbook": str(env.store_dir / KEY / "payload" / "playbook.yml"),
        "patch_restart": ["keystone"],
        "viocli_action": action,
    }


def _revert_calls(node: str, snapshot: str = SNAPSHOT) -> list[Any]:
    """What putting one controller back on its snapshot does, in order."""
    return [
        ("run", "patch.yml", node, "drain"),
        ("revert", node, snapshot),
        ("ssh", [node]),
        ("run", "start.yml", node, "start"),
        ("run", "patch.yml", node, "rejoin"),
    ]


# --- patch add -----------------------------------------------------------------------------------
def test_add_copies_a_signed_patch_into_the_store_and_records_it(env: PatchEnv) -> None:
    result = env.add()
    stored = env.store_dir / f"{KEY}_all.deb"
    assert (result.stored, result.already, result.patch.signed_by) == (stored, False, "publisher.pub")
    assert stored.read_bytes() == env.kit.signed.read_bytes()
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    assert oct(env.store_dir.stat().st_mode & 0o777) == "0o700"
    store = StateStore.open_readonly(env.settings.db_path)
    try:
        record = store.patch(PATCH, VERSION)
        assert record is not None
        assert (record.name, record.version, record.type, record.description) == (
            PATCH,
            VERSION,
            "openstack",
            "Keystone fix",
        )
        assert (record.file, record.size_bytes, record.signed_by) == (
            str(stored),
            env.kit.signed.stat().st_size,
            "publisher.pub",
        )
        assert record.sha256 == ops_patch._sha256(env.kit.signed)
        (op,) = store.operations(OMS)
        assert (op.deployment, op.command, op.result) == (OMS, f"patch add {PATCH} {VERSION}", "succeeded")
        assert op.message.startswith(f"{env.kit.signed} -> {stored}, ") and op.message.endswith(
            "signed by publisher.pub"
        )
        assert store.operations(NAME) == []
    finally:
        store.close()
    # The same file again: already there, nothing more recorded.
    again = env.add()
    assert (again.already, again.stored) == (True, stored)
    store = StateStore.open_readonly(env.settings.db_path)
    try:
        assert len(store.operations(OMS)) == 1 and len(store.patches()) == 1
    finally:
        store.close()
    assert env.calls == []  # nothing reached a node, vCenter or Ansible


def test_add_refuses_a_different_file_under_the_same_name_and_version(env: PatchEnv) -> None:
    env.add()
    stored = env.store_dir / f"{KEY}_all.deb"
    with pytest.raises(Refused) as error:
        env.add(env.kit.other)
    assert error.value.exit_code == 4
    assert error.value.message.startswith(f"a different file of patch {PATCH} version {VERSION} is already added")
    assert error.value.hint
    assert stored.read_bytes() == env.kit.signed.read_bytes()  # the first one stays


def test_add_refuses_an_unsigned_patch_unless_allowed(env: PatchEnv) -> None:
    with pytest.raises(Refused) as error:
        env.add(env.kit.unsigned)
    assert error.value.exit_code == 4
    assert error.value.message == f"{env.kit.unsigned} is not signed; add --allow-unsigned to accept it"
    assert not env.store_dir.exists() or list(env.store_dir.iterdir()) == []
    result = env.add(env.kit.unsigned, allow_unsigned=True)
    assert result.patch.signed_by is None and not result.already
    store = StateStore.open_readonly(env.settings.db_path)
    try:
        assert store.patch(PATCH, VERSION).signed_by is None
        assert store.operations(OMS)[0].message.endswith("unsigned (accepted with --allow-unsigned)")
    finally:
        store.close()


def test_add_of_a_tampered_patch_is_bad_input_and_stores_nothing(env: PatchEnv, tmp_path: Path) -> None:
    tampered = tmp_path / "in" / f"{KEY}_all.deb"
    tampered.parent.mkdir()
    shutil.copy(env.kit.signed, tampered)
    name = payload(f"packages/{_deb_name(KEYSTONE_NEW)}")

    def flip(entries: dict[str, bytes | None]) -> None:
        data = entries[name]
        assert data is not None
        entries[name] = data[:200] + bytes([data[200] ^ 0xFF]) + data[201:]

    edit_data(tampered, flip)
    with pytest.raises(BadInput) as error:
        env.add(tampered)
    assert error.value.exit_code == 2
    assert not env.store_dir.exists() or list(env.store_dir.iterdir()) == []
    store = StateStore.open_readonly(env.settings.db_path)
    try:
        assert store.patches() == [] and store.operations(OMS) == []
    finally:
        store.close()


def test_add_refuses_without_twice_the_patch_size_free_naming_mib(env: PatchEnv, monkeypatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(ops_patch.shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 1 << 10))
    with pytest.raises(Refused) as error:
        env.add()
    size = env.kit.signed.stat().st_size
    assert error.value.exit_code == 4
    assert error.value.message == (
        f"not enough space on the OMS for patch {PATCH} {VERSION}: {env.store_dir} has 0.0 MiB free, "
        f"the patch needs {2 * size / (1 << 20):.1f} MiB (twice its size)"
    )
    assert list(env.store_dir.iterdir()) == []


# --- patch list ----------------------------------------------------------------------------------
def test_list_says_no_before_install_yes_after_and_partial_in_between(env: PatchEnv) -> None:
    assert ops_patch.list_patches(env.settings, NAME) == []
    env.add()
    (row,) = ops_patch.list_patches(env.settings, NAME)
    assert (row.name, row.version, row.type, row.installed, row.where, row.when) == (
        PATCH,
        VERSION,
        "openstack",
        "No",
        "never installed",
        None,
    )
    run = env.start_run(done=["controller01"])
    (row,) = ops_patch.list_patches(env.settings, NAME)
    assert (row.installed, row.where) == ("Partial (1/2 nodes)", "install unfinished: controller01")
    env.install()  # resumes it
    (row,) = ops_patch.list_patches(env.settings, NAME)
    (done,) = env.patch_runs()
    assert done.id == run.id and done.status == "done"
    assert (row.installed, row.where, row.when) == ("Yes", "controller01, controller02", done.ended_at)
    data = row.as_dict()
    assert data == {
        "name": PATCH,
        "version": VERSION,
        "type": "openstack",
        "installed": "Yes",
        "deployment": NAME,
        "where": "controller01, controller02",
        "when": done.ended_at,
        "added_at": data["added_at"],
        "signed_by": "publisher.pub",
        "description": "Keystone fix",
        "history": [f"{data['added_at']} added", f"{done.started_at} install done"],
    }


# --- patch install: preflight --------------------------------------------------------------------
def _nothing_done(env: PatchEnv) -> None:
    assert env.steps() == [] and env.runner.calls == []
    assert not [c for c in env.calls if isinstance(c, tuple) and c[0] in ("snapshot", "revert", "remove")]
    assert env.patch_runs() == []


def test_install_refuses_an_unhealthy_deployment(env: PatchEnv) -> None:
    env.add()
    env.reports = [report("VerifyGaleraCluster")]
    with pytest.raises(Refused) as error:
        env.install(skip_backup=True)
    assert error.value.exit_code == 4
    assert error.value.message == (
        f"deployment {NAME} is not healthy; patch install needs it healthy: "
        "VerifyGaleraCluster: VerifyGaleraCluster: broken"
    )
    assert env.calls == ["status"]
    _nothing_done(env)


def test_install_refuses_a_node_short_of_space(env: PatchEnv) -> None:
    env.add()
    env.free["controller02"] = 1024
    with pytest.raises(Refused) as error:
        env.install(skip_backup=True)
    assert error.value.exit_code == 4
    assert "controller02 has 1.0 MiB free in /var/lib" in error.value.message
    assert "controller01" not in error.value.message
    assert env.calls == ["status", ("df", "controller01"), ("df", "controller02")]
    _nothing_done(env)


def test_install_refuses_without_a_recent_backup_and_names_both_flags(env: PatchEnv) -> None:
    env.add()
    env.recent_backup(datetime.now(UTC) - timedelta(hours=30))  # too old
    env.recent_backup(status="failed", name="vio_os_db_20261201000000")  # recent, but not usable
    with pytest.raises(Refused) as error:
        env.install()
    assert error.value.exit_code == 4
    assert error.value.message.startswith(f"no openstack_db backup of {NAME} from the last 24 hours is in the catalog")
    assert "--backup NFS_VOLUME" in error.value.hint and "--skip-backup" in error.value.hint
    _nothing_done(env)


def test_install_takes_a_backup_first_with_backup(env: PatchEnv) -> None:
    env.add()
    result = env.install(backup_volume="10.0.0.5:/vio_backup")
    assert result.backup == "vio_os_db_20261201000000 on 10.0.0.5:/vio_backup"
    calls = [c for c in env.calls if c != "status" and not (isinstance(c, tuple) and c[0] == "df")]
    # Taken once the operator said yes (the plan says it will be), before the first change.
    assert calls[:2] == [("backup", NAME, "10.0.0.5:/vio_backup"), "connect"]
    assert any(
        line == "  backup to fall back on: a new openstack_db backup on 10.0.0.5:/vio_backup, taken first"
        for line in env.said
    )


def test_install_uses_a_recent_complete_backup_from_the_catalog(env: PatchEnv) -> None:
    env.add()
    env.recent_backup()
    result = env.install()
    assert result.backup is not None
    assert result.backup.startswith("vio_os_db_20261130000000 on 10.0.0.5:/vio_backup (completed ")
    assert not [c for c in env.calls if isinstance(c, tuple) and c[0] == "backup"]


def test_a_no_answer_takes_no_backup(env: PatchEnv) -> None:
    env.add()
    with pytest.raises(Refused, match="patch install cancelled; nothing was changed"):
        env.install(backup_volume="10.0.0.5:/vio_backup", assume_yes=False, confirm=lambda lines: False)
    _nothing_done(env)
    assert not [c for c in env.calls if isinstance(c, tuple) and c[0] == "backup"]


def test_a_node_without_a_vm_is_refused_before_anything_is_recorded(env: PatchEnv) -> None:
    env.add()
    del env.vcenter.states["controller02"]
    with pytest.raises(Refused) as error:
        env.install(skip_backup=True)
    assert error.value.exit_code == 4
    assert error.value.message == "vCenter has no VM for controller02; patching needs every node it touches"
    _nothing_done(env)


# --- patch install: the rolling install ----------------------------------------------------------
def test_install_snapshots_stages_patches_each_controller_and_checks_after_each(env: PatchEnv) -> None:
    env.add()
    env.recent_backup()
    result = env.install()
    assert env.calls == [
        "status",
        ("df", "controller01"),
        ("df", "controller02"),
        "connect",
        ("snapshot", CONTROLLERS, SNAPSHOT),
        ("run", "patch.yml", "controller01:controller02", "stage"),
        ("run", "patch.yml", "controller01", "node"),
        "health",
        ("run", "patch.yml", "controller02", "node"),
        "health",
        "health",
        ("remove", CONTROLLERS, SNAPSHOT),
    ]
    assert env.patch_vars(0) == _install_vars(env, "stage", CONTROLLERS)
    assert env.patch_vars(1) == _install_vars(env, "node", [])
    assert env.patch_vars(2) == _install_vars(env, "node", [])
    # the repository staged on the nodes: the patch's package and its index
    repo = env.store_dir / KEY / "repo"
    assert sorted(p.name for p in repo.iterdir()) == ["Packages", _deb_name(KEYSTONE_NEW)]
    assert f"Package: {KEYSTONE_NEW[0]}\nVersion: {KEYSTONE_NEW[1]}" in (repo / "Packages").read_text()
    assert [n.node for n in result.nodes] == CONTROLLERS
    assert (result.resumed, result.already, result.skipped, result.snapshots_kept) == (False, False, [], False)
    (run,) = env.patch_runs()
    assert (run.action, run.status, run.nodes, run.done, run.snapshot, run.message) == (
        "install",
        "done",
        tuple(CONTROLLERS),
        tuple(CONTROLLERS),
        SNAPSHOT,
        None,
    )
    assert env.history() == [(f"patch install {PATCH} {VERSION}", "succeeded")]
    # A second install: already installed, nothing run.
    env.calls.clear()
    again = env.install()
    assert again.already and env.calls == [] and len(env.patch_runs()) == 1
    assert env.said[-1].startswith(f"patch {PATCH} {VERSION} is already installed on {NAME} (")


def test_install_asks_with_the_plan_and_keeps_snapshots_when_told(env: PatchEnv) -> None:
    env.add()
    result = env.install(assume_yes=False, skip_backup=True, keep_snapshots=True)
    (lines,) = env.asked
    assert lines == [
        f"patch install of {PATCH} {VERSION} (openstack) on deployment {NAME}:",
        "  Keystone fix",
        f"  controller01 (Controller): {KEYSTONE_NEW[0]} {KEYSTONE_NEW[1]}",
        f"  controller02 (Controller): {KEYSTONE_NEW[0]} {KEYSTONE_NEW[1]}",
        f"  one node at a time, each checked before the next; snapshot {SNAPSHOT} of each VM first, kept afterwards",
        "  a node that fails its check puts every node touched so far back on its snapshot",
        "  backup to fall back on: none (--skip-backup)",
    ]
    assert result.snapshots_kept
    assert not [c for c in env.calls if isinstance(c, tuple) and c[0] == "remove"]
    assert env.patch_runs()[0].status == "done"


def test_nodes_are_patched_load_balancers_then_database_then_controllers(env: PatchEnv) -> None:
    deployment, _ = existing_deployment(env.settings, None, NAME, "patch install")
    order = ops_patch.target_nodes(deployment, ["controller", "loadbalancer", "database"])
    assert [n.name for n in order] == WIDE
    assert [n.name for n in ops_patch.target_nodes(deployment, ["compute", "loadbalancer"])] == [
        "loadbalancer01",
        "loadbalancer02",
        "compute01",
        "compute02",
    ]
    env.add(env.kit.wide)
    env.install("vio-patch-3", "1.0.0", skip_backup=True)
    assert ("snapshot", WIDE, "viocli-patch-vio-patch-3_1.0.0") in env.calls
    assert env.steps() == [("patch.yml", ":".join(WIDE), "stage")] + [("patch.yml", n, "node") for n in WIDE]
    assert env.patch_vars(0)["patch_keep_nodes"] == WIDE
    assert sorted(env.patch_vars(0)["patch_packages"]) == sorted(WIDE)


# --- patch install: a node that fails --------------------------------------------------------------
def test_a_failed_node_run_reverts_every_node_touched_last_first(env: PatchEnv) -> None:
    env.add()
    env.runner.failing[("patch.yml", "controller02", "node")] = failed(
        "controller02", INSTALL_TASK, "E: Version '2:22.0.2' for 'python3-keystone' was not found"
    )
    with pytest.raises(OperationFailed) as error:
        env.install(skip_backup=True)
    assert error.value.exit_code == 1
    message = error.value.message
    assert message.startswith(f"patch install of {PATCH} {VERSION} on {NAME}: controller02 failed its check: ")
    assert f"TASK [{INSTALL_TASK}]" in message and "was not found" in message
    assert "(controller02, controller01) is back on its snapshot" in message
    assert env.calls[5:] == [
        ("run", "patch.yml", "controller01:controller02", "stage"),
        ("run", "patch.yml", "controller01", "node"),
        "health",
        ("run", "patch.yml", "controller02", "node"),
        *_revert_calls("controller02"),
        *_revert_calls("controller01"),
        "health",
        ("remove", CONTROLLERS, SNAPSHOT),
    ]
    assert env.extravars(4) == {"viocli_action": "start"}  # services start on the reverted node
    (run,) = env.patch_runs()
    assert (run.status, run.done) == ("reverted", ())
    assert run.message is not None and run.message.startswith("controller02 failed its check: ")
    assert f"TASK [{INSTALL_TASK}]" in run.message
    assert env.history() == [(f"patch install {PATCH} {VERSION}", "failed")]
    (row,) = ops_patch.list_patches(env.settings, NAME)
    assert row.installed == "No" and row.where.startswith("install reverted: controller02 failed its check")


def test_a_failed_check_after_the_first_node_reverts_only_it(env: PatchEnv) -> None:
    env.add()
    env.health = [report("VerifyOpenStackAPIs")]  # after controller01's run; healthy afterwards
    with pytest.raises(OperationFailed) as error:
        env.install(skip_backup=True)
    assert error.value.exit_code == 1
    assert (
        "controller01 failed its check: VerifyOpenStackAPIs: VerifyOpenStackAPIs: broken. Every node touched "
        "(controller01) is back on its snapshot"
    ) in error.value.message
    assert env.calls[5:] == [
        ("run", "patch.yml", "controller01:controller02", "stage"),
        ("run", "patch.yml", "controller01", "node"),
        "health",
        *_revert_calls("controller01"),
        "health",
        ("remove", CONTROLLERS, SNAPSHOT),
    ]
    assert not [s for s in env.steps() if s[1] == "controller02"]
    assert ("revert", "controller02", SNAPSHOT) not in env.calls
    (run,) = env.patch_runs()
    assert (run.status, run.done, run.message) == (
        "reverted",
        (),
        "controller01 failed its check: VerifyOpenStackAPIs: VerifyOpenStackAPIs: broken",
    )


# --- patch install: resuming ---------------------------------------------------------------------
def test_a_killed_install_resumes_after_the_nodes_done(env: PatchEnv) -> None:
    env.add()
    run = env.start_run(done=["controller01"])
    result = env.install()
    assert env.asked == []  # a resume is not asked again
    assert env.calls == [
        "connect",
        ("snapshot", CONTROLLERS, SNAPSHOT),  # take_snapshots keeps a snapshot already there
        ("run", "patch.yml", "controller02", "stage"),
        ("run", "patch.yml", "controller02", "node"),
        "health",
        "health",
        ("remove", CONTROLLERS, SNAPSHOT),
    ]
    assert env.patch_vars(0)["patch_keep_nodes"] == ["controller02"]
    assert (result.resumed, result.skipped, [n.node for n in result.nodes]) == (
        True,
        ["controller01"],
        ["controller02"],
    )
    assert env.said[0].startswith(f"resuming the unfinished install of patch {PATCH} {VERSION} on {NAME}")
    (done,) = env.patch_runs()
    assert (done.id, done.status, done.done) == (run.id, "done", tuple(CONTROLLERS))


def test_a_resumed_install_does_not_keep_a_node_already_kept(env: PatchEnv) -> None:
    env.add()
    env.start_run(done=["controller01"])
    env.keep_old(["controller02"])  # kept by the killed run's stage: the patch's versions may be on it now
    env.install()
    assert env.steps()[0] == ("patch.yml", "controller02", "stage")
    assert env.patch_vars(0)["patch_keep_nodes"] == []
    assert env.patch_vars(0)["patch_keep_dir"] == str(env.previous)


def test_a_revert_that_was_killed_carries_on_and_exits_1(env: PatchEnv) -> None:
    env.add()
    env.start_run(done=["controller01"], status="reverting", message="controller02 failed its check: boom")
    with pytest.raises(OperationFailed) as error:
        env.install()
    assert error.value.exit_code == 1
    assert "controller02 failed its check: boom. Every node touched (controller01) is back" in error.value.message
    assert env.calls == [
        "connect",
        *_revert_calls("controller01"),
        "health",
        ("remove", CONTROLLERS, SNAPSHOT),
    ]
    assert env.said[0].startswith(f"resuming the unfinished revert of patch {PATCH} {VERSION}")
    (run,) = env.patch_runs()
    assert (run.status, run.done, run.message) == ("reverted", (), "controller02 failed its check: boom")


def test_another_patch_is_refused_while_one_is_unfinished(env: PatchEnv) -> None:
    env.add()
    env.add(env.kit.second)
    env.start_run(done=["controller01"])
    with pytest.raises(Refused) as error:
        env.install("vio-patch-2", "1.0.0", skip_backup=True)
    assert error.value.exit_code == 4
    assert error.value.message.startswith(
        f"patch {PATCH} {VERSION} has an unfinished install on {NAME} (1/2 nodes done, started "
    )
    assert error.value.hint == f"finish it first: sudo viocli patch install -p {PATCH} -v {VERSION} -d {NAME}"
    assert env.calls == [] and len(env.patch_runs()) == 1
    # nor its uninstall
    with pytest.raises(Refused, match="has an unfinished install"):
        env.uninstall()


def test_a_kill_right_after_a_node_failed_never_counts_that_node_patched(env: PatchEnv, monkeypatch) -> None:
    env.add()
    env.runner.failing[("patch.yml", "controller02", "node")] = failed("controller02", INSTALL_TASK, "broken")
    transaction = StateStore.transaction
    kill = {"armed": True}

    @contextmanager
    def killed_after_one_write(self):
        with transaction(self) as db:
            yield db
        if kill["armed"] and ("run", "patch.yml", "controller02", "node") in env.calls:
            kill["armed"] = False
            raise KeyboardInterrupt  # viocli killed after the first state write that follows the failed run

    monkeypatch.setattr(StateStore, "transaction", killed_after_one_write)
    with pytest.raises(KeyboardInterrupt):
        env.install(skip_backup=True)
    assert not kill["armed"]
    env.runner.failing.clear()
    env.calls.clear()
    try:
        resumed = env.install()
    except OperationFailed:  # the resume carried on with the revert: controller02 went back too
        assert ("revert", "controller02", SNAPSHOT) in env.calls
    else:  # the resume went on with the install: controller02 had to pass its check this time
        assert resumed.skipped == ["controller01"]
        assert ("run", "patch.yml", "controller02", "node") in env.calls


# --- patch uninstall -----------------------------------------------------------------------------
def test_uninstall_is_refused_when_the_patch_is_not_installed(env: PatchEnv) -> None:
    env.add()
    with pytest.raises(Refused) as error:
        env.uninstall()
    assert error.value.exit_code == 4
    assert error.value.message == f"patch {PATCH} {VERSION} is not installed on {NAME}; there is nothing to uninstall"
    assert env.calls == []


def test_uninstall_puts_back_the_kept_versions_node_by_node(env: PatchEnv) -> None:
    env.add()
    env.install(skip_backup=True)
    env.keep_old(CONTROLLERS)
    env.calls.clear()
    env.runner.calls.clear()
    result = env.uninstall()
    assert env.calls == [
        "status",
        ("df", "controller01"),
        ("df", "controller02"),
        "connect",
        ("snapshot", CONTROLLERS, UNSNAPSHOT),
        ("run", "patch.yml", "controller01:controller02", "stage"),
        ("run", "patch.yml", "controller01", "node"),
        "health",
        ("run", "patch.yml", "controller02", "node"),
        "health",
        "health",
        ("remove", CONTROLLERS, UNSNAPSHOT),
    ]
    repo = env.previous / "repo"
    expected = {
        "patch_key": KEY,
        "patch_packages": _packages(CONTROLLERS, KEYSTONE_OLD),
        "patch_repo": str(repo),
        "patch_keep_dir": "",
        "patch_keep_nodes": [],
        "patch_playbook": "",
        "patch_restart": ["keystone"],
    }
    assert [env.patch_vars(i) for i in range(3)] == [
        {**expected, "viocli_action": "stage"},
        {**expected, "viocli_action": "node"},
        {**expected, "viocli_action": "node"},
    ]
    assert sorted(p.name for p in repo.iterdir()) == ["Packages", env.kit.old.name]
    assert [n.node for n in result.nodes] == CONTROLLERS
    latest = env.patch_runs()[0]
    assert (latest.action, latest.status, latest.done, latest.snapshot) == (
        "uninstall",
        "done",
        tuple(CONTROLLERS),
        UNSNAPSHOT,
    )
    (row,) = ops_patch.list_patches(env.settings, NAME)
    assert (row.installed, row.where) == ("No", "uninstalled from controller01, controller02")
    assert env.history()[-1] == (f"patch uninstall {PATCH} {VERSION}", "succeeded")


def test_install_keeps_what_stage_fetched_root_only_and_uninstall_puts_it_back(env: PatchEnv) -> None:
    def fetched() -> None:  # the stage's fetch: world-readable files, as Ansible writes them
        env.keep_old(CONTROLLERS)
        for path in [env.previous, *env.previous.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    env.add()
    env.runner.meanwhile[("patch.yml", "controller01:controller02", "stage")] = fetched
    env.install(skip_backup=True)
    kept = sorted(env.previous.rglob("*"))
    assert [p.relative_to(env.previous).as_posix() for p in kept] == [
        "controller01",
        f"controller01/{env.kit.old.name}",
        "controller02",
        f"controller02/{env.kit.old.name}",
    ]
    assert {oct(p.stat().st_mode & 0o777) for p in kept if p.is_dir()} == {"0o700"}
    assert {oct(p.stat().st_mode & 0o777) for p in kept if p.is_file()} == {"0o600"}
    env.runner.meanwhile.clear()
    env.runner.calls.clear()
    env.uninstall()
    assert env.patch_vars(1)["patch_packages"] == _packages(CONTROLLERS, KEYSTONE_OLD)


def test_uninstall_is_refused_when_a_nodes_kept_packages_are_missing(env: PatchEnv) -> None:
    env.add()
    env.install(skip_backup=True)
    env.keep_old(["controller01"])
    env.calls.clear()
    with pytest.raises(Refused) as error:
        env.uninstall()
    assert error.value.exit_code == 4
    assert error.value.message == (
        f"the versions from before patch {PATCH} {VERSION} are not kept for controller02 (looked in {env.previous})"
    )
    assert env.calls == [] and env.patch_runs()[0].action == "install"


def test_after_a_reverted_uninstall_the_patch_is_still_installed_and_can_be_uninstalled(env: PatchEnv) -> None:
    env.add()
    env.install(skip_backup=True)
    env.keep_old(CONTROLLERS)
    env.runner.failing[("patch.yml", "controller01", "node")] = failed("controller01", INSTALL_TASK, "broken")
    with pytest.raises(OperationFailed):
        env.uninstall()
    (row,) = ops_patch.list_patches(env.settings, NAME)
    assert row.installed == "Yes"  # the uninstall was reverted: the patch is on the nodes
    assert env.install(skip_backup=True).already  # installing it again would keep the patch's versions as the old
    del env.runner.failing[("patch.yml", "controller01", "node")]
    env.uninstall()
    assert env.patch_runs()[0].status == "done"


# --- the command line ----------------------------------------------------------------------------
def test_cli_list_add_and_list_again(env: PatchEnv, as_root) -> None:
    empty = CliRunner().invoke(cli, ["patch", "list"])
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.splitlines()[0].split() == ["Name", "Version", "Type", "Installed", "Where", "When"]
    added = CliRunner().invoke(cli, ["patch", "add", "-l", str(env.kit.signed)])
    assert added.exit_code == 0, added.output
    assert added.stdout.splitlines()[0] == f"{env.kit.signed} patch has been added."
    assert f"install it with: sudo viocli patch install -p {PATCH} -v {VERSION}" in added.stdout
    again = CliRunner().invoke(cli, ["patch", "add", "-l", str(env.kit.signed)])
    assert again.exit_code == 0 and again.stdout == f"{env.kit.signed} patch is already added ({PATCH} {VERSION}).\n"
    listed = CliRunner().invoke(cli, ["patch", "list", "-d", NAME])
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["Name", "Version", "Type", "Installed"]
    assert lines[2].split() == [PATCH, VERSION, "openstack", "No", "never", "installed", "-"]
    different = CliRunner().invoke(cli, ["patch", "add", "-l", str(env.kit.other)])
    assert different.exit_code == 4 and "a different file of patch" in different.stderr


def test_cli_install_asks_and_no_changes_nothing(env: PatchEnv, as_root) -> None:
    env.add()
    result = CliRunner().invoke(
        cli, ["patch", "install", "-p", PATCH, "-v", VERSION, "--skip-backup", "-d", NAME], input="n\n"
    )
    assert result.exit_code == 4
    assert result.stdout.splitlines()[0] == f"Installing patch {PATCH} version {VERSION}"
    assert f"patch install of {PATCH} {VERSION} (openstack) on deployment {NAME}:" in result.stdout
    assert "install this patch?" in result.stderr and "patch install cancelled; nothing was changed" in result.stderr
    _nothing_done(env)
    done = CliRunner().invoke(cli, ["patch", "install", "-p", PATCH, "-v", VERSION, "--skip-backup", "--yes"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[-1].startswith(
        f"Installation complete for patch {PATCH} version {VERSION} on {NAME}"
    )
    listed = CliRunner().invoke(cli, ["patch", "list", "-d", NAME])
    assert listed.stdout.splitlines()[2].split()[:4] == [PATCH, VERSION, "openstack", "Yes"]


def test_cli_list_without_d_shows_the_state_on_the_only_deployment(env: PatchEnv, as_root) -> None:
    env.add()
    env.install(skip_backup=True)
    listed = CliRunner().invoke(cli, ["patch", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[2].split()[:4] == [PATCH, VERSION, "openstack", "Yes"]
