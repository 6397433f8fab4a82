"""``viocli patch`` on the shared HA deployment (issue 13): patches built from the node template's real
Debian packages (python3-keystone and keystone, rebuilt with a bumped version by bench/make-patch) are
added, installed one controller at a time while a client asks Keystone and Nova through the external
VIP, and uninstalled; a bad one is reverted to the snapshots by itself. The client's records are the
evidence of availability; every test leaves the deployment healthy on the template's versions.

Needs root and the lab.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.clients import ApiClientLoop
from tests.lab.conftest import HA
from tests.lab.oms import CONTROLLERS, EXTERNAL_VIP, admin_password, external_ca, lab_vcenter, on_node, run_viocli
from tests.lab.test_faults import _assert_healthy

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("python3-keystone", "keystone")
CONTROLLER_VMS = ("vio-lab-ha-Controller-0", "vio-lab-ha-Controller-1")
# Patch names of this run: an OMS kept between runs (VIOCLI_TEST_OMS) already has those of earlier ones.
RUN = secrets.token_hex(2)
GOOD, BAD = f"keystone-fix-{RUN}", f"keystone-bad-{RUN}"


def _template_root(env: dict[str, str]) -> Path:
    """The lab's node template (a pristine root: no node's rendered configuration in it)."""
    record = json.loads((Path(env["VIOCLI_STATE_DIR"]) / "lab" / "lab.json").read_text())
    return Path(record["template"])


@pytest.fixture(scope="module")
def signer(ha, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Ed25519 signing key whose public half the OMS trusts (the config directory's trusted-keys)."""
    env, _, _ = ha
    directory = tmp_path_factory.mktemp("signer")
    key = directory / "signer"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-signer", "-f", str(key)], check=True)
    trusted = Path(env["VIOCLI_CONFIG"]).parent / "trusted-keys"
    trusted.mkdir(parents=True, exist_ok=True)
    (trusted / "test-signer.pub").write_bytes(key.with_suffix(".pub").read_bytes())
    return key


def make_patch(env: dict[str, str], out: Path, name: str, *options: str, sign: Path | None = None) -> Path:
    """A keystone patch built by bench/make-patch from the template's packages."""
    argv = [sys.executable, str(ROOT / "bench" / "make-patch"), "--name", name, "--version", "1.0"]
    argv += ["--role", "controller", "--package", *PACKAGES, "--restart", "keystone"]
    argv += ["--root", str(_template_root(env)), "-o", str(out), *options]
    if sign is not None:
        argv += ["--sign-key", str(sign)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def versions(env: dict[str, str]) -> dict[str, str]:
    """controller address -> the version of python3-keystone and keystone installed there."""
    found = {}
    for address in CONTROLLERS:
        text = on_node(env, HA, address, "dpkg-query -W -f='${Version} ' " + " ".join(PACKAGES))
        values = set(text.split())
        assert len(values) == 1, f"{address}: {text}"
        found[address] = values.pop()
    return found


def patch_rows(env: dict[str, str]) -> dict[str, dict]:
    done = run_viocli(env, "patch", "list", "-d", HA, "--format", "json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)}


def snapshots(env: dict[str, str]) -> dict[str, list[str]]:
    """VM name -> the names of its snapshots, from vCenter."""
    from pyVmomi import vim

    from viocli.vsphere.objects import find

    si = lab_vcenter(env)
    found = {}
    for name in CONTROLLER_VMS:
        vm = find(si, vim.VirtualMachine, name)
        names: list[str] = []
        pending = list(vm.snapshot.rootSnapshotList) if vm.snapshot else []
        while pending:
            tree = pending.pop()
            names.append(tree.name)
            pending.extend(tree.childSnapshotList)
        found[name] = names
    return found


def _run_state(env: dict[str, str], name: str) -> tuple[str, list[str]] | None:
    db = sqlite3.connect(f"file:{env['VIOCLI_STATE_DIR']}/viocli.db?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute(
            "SELECT status, done FROM patch_runs WHERE deployment=? AND name=? ORDER BY id DESC LIMIT 1", (HA, name)
        ).fetchone()
    finally:
        db.close()
    return (row[0], json.loads(row[1])) if row else None


def test_bad_patch_files_are_refused_at_add(ha, signer: Path, tmp_path: Path) -> None:
    from viocli.patch.package import build_patch, extract_payload, read_patch

    env, _, _ = ha
    unsigned = make_patch(env, tmp_path / "unsigned", "keystone-unsigned")
    refused = run_viocli(env, "patch", "add", "-l", str(unsigned))
    assert refused.returncode == 4, refused.stderr
    assert "is not signed" in refused.stderr and "--allow-unsigned" in refused.stderr

    good = make_patch(env, tmp_path / "good", "keystone-checked", sign=signer)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a byte off inside the payload
    tampered = tmp_path / "tampered" / good.name
    tampered.parent.mkdir()
    tampered.write_bytes(bytes(data))
    refused = run_viocli(env, "patch", "add", "-l", str(tampered))
    assert refused.returncode == 2, refused.stderr
    assert str(tampered) in refused.stderr

    trusted = Path(env["VIOCLI_CONFIG"]).parent / "trusted-keys"
    payload = extract_payload(read_patch(good, trusted_keys=trusted), tmp_path / "payload")
    newer = build_patch(
        tmp_path / "newer",
        name="keystone-newer",
        version="1.0",
        type="openstack",
        description="needs a newer viocli",
        roles=["controller"],
        packages=sorted((payload / "packages").glob("*.deb")),
        min_viocli_version="99.0",
        signing_key=signer,
    )
    refused = run_viocli(env, "patch", "add", "-l", str(newer))
    assert refused.returncode == 4, refused.stderr
    assert "99.0" in refused.stderr
    assert set(patch_rows(env)) & {"keystone-unsigned", "keystone-checked", "keystone-newer"} == set()


def test_a_patch_installs_one_controller_at_a_time_resumes_after_a_kill_and_uninstalls(
    ha, signer: Path, tmp_path: Path
) -> None:
    env, _, _ = ha
    before = versions(env)
    patch = make_patch(env, tmp_path, GOOD, sign=signer)
    added = run_viocli(env, "patch", "add", "-l", str(patch))
    assert added.returncode == 0, added.stderr
    assert f"{patch} patch has been added." in added.stdout
    row = patch_rows(env)[GOOD]
    assert (row["installed"], row["type"]) == ("No", "openstack")
    try:
        client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA), pause=0.1)
        with client:
            # viocli is killed once the first controller is patched and checked; run again, it resumes.
            argv = ["patch", "install", "-d", HA, "-p", GOOD, "-v", "1.0", "--yes", "--skip-backup"]
            process = subprocess.Popen(
                [sys.executable, "-m", "viocli", *argv],
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            deadline = time.monotonic() + 900
            while _run_state(env, GOOD) != ("running", ["controller01"]) and process.poll() is None:
                assert time.monotonic() < deadline, "install never finished its first controller"
                time.sleep(0.5)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
            output = process.stdout.read() if process.stdout else ""
            assert process.returncode == -signal.SIGKILL, output
            assert patch_rows(env)[GOOD]["installed"] == "Partial (1/2 nodes)"
            resumed = run_viocli(env, "patch", "install", "-d", HA, "-p", GOOD, "-v", "1.0", "--yes")
            assert resumed.returncode == 0, resumed.stdout + resumed.stderr
            assert "resuming the unfinished install" in resumed.stderr
            assert f"Installation complete for patch {GOOD} version 1.0" in resumed.stdout
            time.sleep(2)
        assert client.failures == [], client.failures[:5]
        assert len(client.records) > 50
        patched = versions(env)
        assert all(v == before[a] + "+viocli1" for a, v in patched.items()), (before, patched)
        assert on_node(env, HA, CONTROLLERS[1], f"cat /usr/share/viocli-patch/{GOOD}/keystone").strip()
        row = patch_rows(env)[GOOD]
        assert row["installed"] == "Yes" and row["where"] == "controller01, controller02", row
        assert snapshots(env) == {vm: [] for vm in CONTROLLER_VMS}

        client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA), pause=0.1)
        with client:
            removed = run_viocli(env, "patch", "uninstall", "-d", HA, "-p", GOOD, "-v", "1.0", "--yes")
            time.sleep(2)
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert client.failures == [], client.failures[:5]
        assert versions(env) == before
        assert patch_rows(env)[GOOD]["installed"] == "No"
        history = run_viocli(env, "deployment", "status", "-d", HA)  # the deployment answers its own checks
        assert history.returncode == 0, history.stdout
    finally:
        _leave_on_template_versions(env, before)
        _assert_healthy(env)


def test_a_patch_whose_postinst_fails_on_the_second_controller_is_reverted_everywhere(
    ha, signer: Path, tmp_path: Path
) -> None:
    env, _, _ = ha
    before = versions(env)
    patch = make_patch(env, tmp_path, BAD, "--fail-postinst-on", "controller02", sign=signer)
    assert run_viocli(env, "patch", "add", "-l", str(patch)).returncode == 0
    try:
        client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA), pause=0.1)
        with client:
            done = run_viocli(env, "patch", "install", "-d", HA, "-p", BAD, "-v", "1.0", "--yes", "--skip-backup")
            time.sleep(2)
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert "controller02 failed its check" in out, out
        assert "postinst" in out or "Install the patch's packages" in out, out
        assert "controller02, controller01" in out and "the deployment is healthy again" in out, out
        assert versions(env) == before
        assert not on_node(env, HA, CONTROLLERS[0], f"ls /usr/share/viocli-patch/{BAD} 2>/dev/null || true").strip()
        row = patch_rows(env)[BAD]
        assert row["installed"] == "No" and "reverted" in row["where"], row
        assert snapshots(env) == {vm: [] for vm in CONTROLLER_VMS}
        # One controller at a time was out of HAProxy, drained first: the API never stopped answering.
        assert client.failures == [], client.failures[:5]
    finally:
        _leave_on_template_versions(env, before)
        _assert_healthy(env)


def _leave_on_template_versions(env: dict[str, str], before: dict[str, str]) -> None:
    """After a failed test: the controllers on the template's versions again (a later test expects them)."""
    if versions(env) == before:
        return
    rows = patch_rows(env)
    for name, row in rows.items():
        if row["installed"] != "No":
            run_viocli(env, "patch", "uninstall", "-d", HA, "-p", name, "-v", row["version"], "--yes")
