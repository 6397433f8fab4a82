"""``deployment getlogs`` on the shared HA deployment (issue 12): the bundle a support engineer gets.

What they check: every node is in it, with the files they ask for first (nova-api's log from both
controllers, Galera's status from the three database nodes, HAProxy's statistics from both load
balancers); the manifest's checksums match the files; and not one secret is in it, however it was
written (config files, logs, compressed rotated logs, URLs). The selection flags narrow it as they
say, and --nfs writes it straight to the export. (A powered-off node: test_faults' load balancer
test.) Needs root and the lab.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import secrets
import tarfile
from pathlib import Path

import pytest

from tests.lab.conftest import HA
from tests.lab.oms import CONTROLLERS, on_node, on_node_run, run_viocli
from viocli.ops.getlogs import secret_values
from viocli.settings import Settings

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

EXPORT = "10.203.0.1:/vio_backup"
NODES = {
    "loadbalancer01", "loadbalancer02", "database01", "database02", "database03",
    "controller01", "controller02", "compute01", "compute02",
}  # fmt: skip
PLANTED_CONF = "/etc/nova/viocli-getlogs-planted.conf"
PLANTED_LOG = "/var/log/nova/viocli-getlogs-planted.log"
PLANTED_GZ = "/var/log/nova/viocli-getlogs-planted.log.3.gz"
OLD_LOG = "/var/log/nova/viocli-getlogs-old.log"


def _store_values(env: dict[str, str]) -> list[str]:
    settings = Settings(Path(env["VIOCLI_CONFIG"]), Path(env["VIOCLI_STATE_DIR"]), Path(env["VIOCLI_LOG_FILE"]), None)
    return [v for v in secret_values(settings, HA) if len(v) >= 4]


def _getlogs(env: dict[str, str], *args: str, code: int = 0) -> tuple[str, Path | None]:
    result = run_viocli(env, "deployment", "getlogs", "-d", HA, *args, timeout=600)
    assert result.returncode == code, result.stdout + result.stderr
    found = re.search(r"^bundle: (\S+)$", result.stdout, re.MULTILINE)
    return result.stdout + result.stderr, Path(found.group(1)) if found else None


def _unpack(bundle: Path, into: Path) -> tuple[Path, dict]:
    with tarfile.open(bundle) as tar:
        tar.extractall(into, filter="data")
    (top,) = into.iterdir()
    assert top.name == bundle.name.removesuffix(".tar.gz")
    return top, json.loads((top / "manifest.json").read_text())


def _hits(top: Path, values: list[str]) -> list[tuple[str, str]]:
    """(file, the secret's first 4 characters) for every secret found anywhere in the unpacked bundle."""
    found = []
    for path in (p for p in top.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        found += [(str(path.relative_to(top)), v[:4]) for v in values if v.encode() in data]
    return found


def test_the_bundle_has_every_node_what_support_asks_for_matching_checksums_and_no_secret(ha, tmp_path) -> None:
    env, _, _ = ha
    store = _store_values(env)
    # Secrets not in the store, written the ways config files write them.
    planted = {k: f"Planted{k}{secrets.token_hex(8)}" for k in ("password", "rabbit", "db", "stats")}
    conf = (
        "[DEFAULT]\n"
        f"transport_url = rabbit://nova:{planted['rabbit']}@10.203.0.102:5672,nova:{planted['rabbit']}@10.203.0.103:5672/\n"
        "[database]\n"
        f"connection = mysql+pymysql://nova:{planted['db']}@10.203.0.90/nova\n"
        "[keystone_authtoken]\n"
        f"password = {planted['password']}\n"
        "auth_type = password\n"
    )
    # The whole secret set, in a log and in a compressed rotated log.
    log = "".join(f"2026-12-05 10:00:00.000 1 DEBUG planted value {v} end\n" for v in store)
    log += f"stats auth admin:{planted['stats']}\n"
    controller = CONTROLLERS[0]
    try:
        for path, text, command in (
            (PLANTED_CONF, conf, f"cat > {PLANTED_CONF}"),
            (PLANTED_LOG, log, f"cat > {PLANTED_LOG}"),
            (PLANTED_GZ, log, f"gzip -c > {PLANTED_GZ}"),
        ):
            assert on_node_run(env, HA, controller, command, stdin=text).returncode == 0, path  # never on argv
        out, bundle = _getlogs(env, "-o", str(tmp_path))
        assert bundle is not None and bundle.parent == tmp_path and bundle.name.startswith(f"viocli-logs-{HA}-")
        assert oct(bundle.stat().st_mode & 0o777) == "0o600"
        assert "MiB" in out and all(node in out for node in NODES)
        top, manifest = _unpack(bundle, tmp_path / "x")

        # Every node, every one collected; the OMS's part.
        assert set(manifest["nodes"]) == NODES
        assert {n["status"] for n in manifest["nodes"].values()} == {"collected"}, manifest["nodes"]
        assert {n["power_state"] for n in manifest["nodes"].values()} == {"poweredOn"}
        for name in ("oms/log/viocli.log", "oms/state/operations.json", "oms/show-p.yml", "oms/vcenter-vms.json"):
            assert (top / name).is_file(), name
        vms = json.loads((top / "oms/vcenter-vms.json").read_text())["vms"]
        assert set(vms) == NODES and {vm["power_state"] for vm in vms.values()} == {"poweredOn"}

        # What support asks for first.
        for name in ("controller01", "controller02"):
            assert (top / name / "files/var/log/nova/nova-api.log").stat().st_size > 0, name
            assert (top / name / "files/etc/nova/nova.conf").is_file()
        for name in ("database01", "database02", "database03"):
            status = (top / name / "commands/galera-status.txt").read_text()
            assert re.search(r"^wsrep_cluster_size\s+3$", status, re.MULTILINE), status
            assert "running_nodes" in (top / name / "commands/rabbitmq-cluster-status.txt").read_text().lower() or (
                "running nodes" in (top / name / "commands/rabbitmq-cluster-status.txt").read_text().lower()
            )
        for name in ("loadbalancer01", "loadbalancer02"):
            assert (top / name / "commands/haproxy-stats.txt").read_text().startswith("# pxname,svname,")
            assert (top / name / "files/etc/haproxy/haproxy.cfg").is_file()
        for name in NODES:
            for command in ("journal", "df", "free", "mounts", "addresses", "routes", "packages", "units"):
                assert (top / name / "commands" / f"{command}.txt").stat().st_size > 0, (name, command)
        assert not list(top.rglob("fernet-keys")) and not list(top.rglob(".erlang.cookie"))

        # The manifest lists every file, with its source and a checksum that matches.
        listed = {f["path"]: f for f in manifest["files"]}
        on_disk = {str(p.relative_to(top)) for p in top.rglob("*") if p.is_file()} - {"manifest.json"}
        assert set(listed) == on_disk
        for path, entry in listed.items():
            data = (top / path).read_bytes()
            assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest(), path
        assert listed["database01/commands/galera-status.txt"]["source"].startswith("command: mariadb")
        assert listed["controller01/files/var/log/nova/nova-api.log"]["source"] == "file: /var/log/nova/nova-api.log"

        # Not one secret: the store's, and the planted ones, in plain and in .gz files.
        planted_files = [f"controller01/files{p}" for p in (PLANTED_CONF, PLANTED_LOG, PLANTED_GZ)]
        assert all((top / p).is_file() for p in planted_files)
        assert listed[planted_files[2]]["redactions"] >= len(store)
        assert _hits(top, [*store, *planted.values()]) == []
        text = (top / planted_files[0]).read_text()
        assert "auth_type = password" in text and "rabbit://nova:********@10.203.0.102:5672" in text
    finally:
        on_node(env, HA, controller, f"rm -f {PLANTED_CONF} {PLANTED_LOG} {PLANTED_GZ}")


def test_node_role_since_and_nfs_narrow_or_redirect_the_bundle(ha, tmp_path) -> None:
    env, _, _ = ha
    controller = CONTROLLERS[0]
    try:
        on_node(env, HA, controller, f"echo old > {OLD_LOG} && touch -d '3 hours ago' {OLD_LOG}")
        # --role: that role's nodes, no OMS part.
        _, bundle = _getlogs(env, "--role", "LoadBalancer", "-o", str(tmp_path))
        top, manifest = _unpack(bundle, tmp_path / "role")
        assert set(manifest["nodes"]) == {"loadbalancer01", "loadbalancer02"}
        assert {p.name for p in top.iterdir()} == {"loadbalancer01", "loadbalancer02", "manifest.json"}
        bundle.unlink()

        # --node with --since: one node, only what was written in the last hour, the journal since then.
        _, bundle = _getlogs(env, "--node", "controller01", "--since", "1h", "-o", str(tmp_path))
        top, manifest = _unpack(bundle, tmp_path / "since")
        assert set(manifest["nodes"]) == {"controller01"}
        assert not (top / "controller01/files" / OLD_LOG.lstrip("/")).exists()
        assert (top / "controller01/files/var/log/nova/nova-api.log").is_file()  # written to all the time
        journal = next(f for f in manifest["files"] if f["path"] == "controller01/commands/journal.txt")
        assert "--since @" in journal["source"]
        bundle.unlink()
        _, bundle = _getlogs(env, "--node", "controller01", "-o", str(tmp_path))  # without --since it is there
        with tarfile.open(bundle) as tar:
            assert any(name.endswith(OLD_LOG) for name in tar.getnames())
        bundle.unlink()

        # --non-node-logs alone: the OMS's part only.
        _, bundle = _getlogs(env, "--non-node-logs", "-o", str(tmp_path))
        top, manifest = _unpack(bundle, tmp_path / "oms")
        assert manifest["nodes"] == {} and {p.name for p in top.iterdir()} == {"oms", "manifest.json"}
        bundle.unlink()

        # --nfs: straight to the export, nothing on the OMS's disk; a database node's part.
        out, _ = _getlogs(env, "--node", "database01", "--nfs", EXPORT)
        written = re.search(r"^bundle: (\S+)$", out, re.MULTILINE).group(1)
        assert written.startswith(f"{EXPORT}/viocli-logs-{HA}-"), out
        exported = Path(env["VIOCLI_STATE_DIR"]) / "lab" / "nfs" / "export" / written.rsplit("/", 1)[1]
        try:
            top, manifest = _unpack(exported, tmp_path / "nfs")
            assert set(manifest["nodes"]) == {"database01"}
            assert (top / "database01/commands/galera-status.txt").is_file()
        finally:
            exported.unlink(missing_ok=True)
        assert not [p for p in exported.parent.iterdir() if "viocli-logs" in p.name], "a partial bundle was left"

        # Bad input changes nothing: an unknown node, -o with --nfs.
        out, _ = _getlogs(env, "--node", "controler01", "-o", str(tmp_path), code=2)
        assert "did you mean controller01" in out, out
        out, _ = _getlogs(env, "-o", str(tmp_path), "--nfs", EXPORT, code=2)
        assert not list(tmp_path.glob("*.tar.gz"))
    finally:
        on_node(env, HA, controller, f"rm -f {OLD_LOG}")
