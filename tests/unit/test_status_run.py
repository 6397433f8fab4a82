"""How `deployment status` runs: every collector at once, every node at once, reachability probed once
and an unreachable node reported once; what a user who is not root gets; the read-only composition."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from viocli.errors import Refused
from viocli.health import context as health_context
from viocli.health.collectors import COLLECTORS, Collector, run_collectors
from viocli.health.context import Unavailable
from viocli.health.parallel import fan_out, within
from viocli.health.result import Result, Status
from viocli.inventory.load import load_inventory
from viocli.ops import status as ops_status
from viocli.settings import load_settings
from viocli.state.store import StateStore

from .test_status_fakes import FakeShell, galera, ha_deployment, haproxy_stat, make_context, rabbitmq

BARRIER_TIMEOUT = 10  # seconds: only reached when the work does not run concurrently (the test fails)


def test_every_collector_runs_at_the_same_time() -> None:
    barrier = threading.Barrier(len(COLLECTORS), timeout=BARRIER_TIMEOUT)

    def waits(collector: Collector) -> Collector:
        def check(ctx) -> Result:
            barrier.wait()  # BrokenBarrierError unless every collector is running at once
            return collector.check(ctx)

        return Collector(collector.name, collector.what, check)

    results = run_collectors(make_context(), [waits(c) for c in COLLECTORS])
    assert [r.overall_status for r in results] == [Status.SUCCESS] * len(COLLECTORS)


def test_a_collector_asks_every_node_at_the_same_time() -> None:
    _, nodes = ha_deployment()
    shell = FakeShell(nodes)
    ctx = make_context(shell)
    ctx.reachability()  # probed first, so that only the collector's own commands meet at the barrier
    barrier = threading.Barrier(len(nodes), timeout=BARRIER_TIMEOUT)
    shell.before = lambda node, command: barrier.wait()
    result = run_collectors(ctx, [c for c in COLLECTORS if c.name == "VerifyTimeSynchronization"])[0]
    assert result.overall_status is Status.SUCCESS
    assert fan_out([], lambda item: item) == []


def test_reachability_is_probed_once_per_node_whatever_the_collectors() -> None:
    _, nodes = ha_deployment()
    shell = FakeShell(nodes)
    run_collectors(make_context(shell))
    for node in nodes:
        assert shell.calls_to(node.name).count("true") == 1


def test_an_unreachable_node_is_reported_once_and_skipped_by_the_others_but_cluster_members() -> None:
    _, nodes = ha_deployment()
    shell = FakeShell(nodes)
    shell.down.update({"database03", "controller02"})
    two = ["database01", "database02"]
    for node in two:  # what the survivors see: a two-member Galera and RabbitMQ cluster
        shell.answers[(node, "galera")] = galera(size=2)
        shell.answers[(node, "rabbitmq")] = rabbitmq(two)
    down = haproxy_stat(
        {
            (f"{api}_{side}", "controller02"): "DOWN"
            for api in ("keystone", "nova_api")
            for side in ("internal", "external")
        }
    )
    shell.answers[("loadbalancer01", "haproxy")] = down
    shell.answers[("loadbalancer02", "haproxy")] = down
    results = {r.collector_name: r for r in run_collectors(make_context(shell))}

    reach = results.pop("VerifyNodeReachable")
    assert reach.overall_status is Status.FAILURE
    assert reach.nodes == ["controller02", "database03"]
    # A cluster member nobody can reach is a cluster nobody can vouch for: Galera and RabbitMQ name it.
    for name in ("VerifyGaleraCluster", "VerifyRabbitMQCluster"):
        cluster = results.pop(name)
        assert cluster.overall_status is Status.FAILURE, name
        assert cluster.nodes == ["database03"], name
        assert "database03: unreachable, so its" in cluster.message
    for name, result in results.items():
        assert not {"database03", "controller02"} & set(result.nodes), name
        assert result.overall_status is Status.SUCCESS, (name, result.message)
    assert "not checked on unreachable controller02" in results["VerifyMemcached"].message
    assert shell.calls_to("database03") == ["true"], "one SSH attempt to a dead node, not one per collector"
    assert shell.calls_to("controller02") == ["true"]


def test_every_node_unreachable_leaves_the_node_checks_unchecked_not_failed() -> None:
    _, nodes = ha_deployment()
    shell = FakeShell(nodes)
    shell.down.update(n.name for n in nodes)
    results = {r.collector_name: r for r in run_collectors(make_context(shell))}
    assert results["VerifyNodeReachable"].overall_status is Status.FAILURE
    assert len(results["VerifyNodeReachable"].nodes) == 9
    for name in ("VerifyTimeSynchronization", "VerifyGaleraCluster", "VerifyHAProxyBackends", "VerifyDiskSpace"):
        assert results[name].overall_status is Status.WARNING
        assert "answers SSH (see VerifyNodeReachable)" in results[name].message


def test_a_user_who_cannot_read_the_key_or_secrets_gets_warnings_saying_run_as_root(monkeypatch) -> None:
    monkeypatch.setattr(health_context, "ssh_banner", lambda address, timeout=5: (True, "SSH-2.0-OpenSSH_9.2p1"))
    no_key = Unavailable("the OMS's SSH key /var/lib/viocli/ssh/id_ed25519 is readable by root only")
    no_secrets = Unavailable("the secrets store of vio-prod is readable by root only")
    results = {r.collector_name: r for r in run_collectors(make_context(secrets=no_secrets, shell_problem=no_key))}
    reach = results.pop("VerifyNodeReachable")
    assert reach.overall_status is Status.SUCCESS
    assert "sshd answers; run as root to check the logins and host keys" in reach.message
    apis = results.pop("VerifyOpenStackAPIs")
    assert apis.overall_status is Status.WARNING and "admin a token" in apis.message
    for name, result in results.items():
        assert result.overall_status is Status.WARNING, name
        assert result.message.startswith("run as root to check"), result.message
        assert result.action.startswith("sudo viocli deployment status")


def test_a_crashing_collector_is_a_failure_naming_the_error_and_the_others_still_run() -> None:
    def broken(ctx) -> Result:
        raise KeyError("wsrep_cluster_size")

    results = run_collectors(make_context(), [Collector("VerifyBroken", "it", broken), COLLECTORS[1]])
    assert results[0].overall_status is Status.FAILURE
    assert "the check itself failed: KeyError" in results[0].message
    assert results[1].overall_status is Status.SUCCESS


def test_within_gives_up_on_a_call_that_hangs() -> None:
    release = threading.Event()
    with pytest.raises(TimeoutError, match="vCenter x:443 did not answer"):
        within(0.05, release.wait, "vCenter x:443")
    release.set()
    assert within(1, lambda: 42, "fast") == 42


# --- the operation: read-only, no lock, what this user can read ---------------------------------
def _record(viocli_env: Path, example) -> str:
    inventory = example("ha")
    loaded = load_inventory(inventory)
    store = StateStore.open_writable(load_settings().db_path)
    store.register_deployment(loaded.name, inventory, loaded.model.mode)
    from viocli.inventory.topology import allocate, resolve_nodes

    store.record_nodes(loaded.name, resolve_nodes(loaded.model, allocate(loaded.model)))
    store.update_node(loaded.name, "database01", vm_id="vm-1001")
    store.close()
    return loaded.name


def test_status_on_a_fresh_oms_reports_what_it_cannot_read_and_writes_nothing(viocli_env, example, monkeypatch):
    name = _record(viocli_env, example)
    monkeypatch.setattr(health_context, "ssh_banner", lambda address, timeout=5: (True, "SSH-2.0-OpenSSH_9.2p1"))
    state = viocli_env / "state"
    before = sorted(p.relative_to(state) for p in state.rglob("*"))
    report = ops_status.deployment_status(load_settings(), None)
    assert report.deployment == name
    assert sorted(p.relative_to(state) for p in state.rglob("*")) == before, "a read-only command wrote something"
    assert not (state / "locks").exists(), "status takes no lock"
    results = {r.collector_name: r for r in report.results}
    assert results["VerifyNodeReachable"].overall_status is Status.SUCCESS
    assert (
        "known_hosts" in results["VerifyGaleraCluster"].message or "SSH key" in results["VerifyGaleraCluster"].message
    )
    assert results["VerifyGaleraCluster"].message.startswith("cannot check the Galera cluster")
    assert "secret vcenter_password of vio-prod is not stored" in results["VerifyVMPowerState"].message
    assert "secrets set vcenter_password -d vio-prod" in results["VerifyVMPowerState"].action
    assert "external-ca.pem does not exist" in results["VerifyOpenStackAPIs"].message
    assert report.failed == []


def test_status_with_no_deployment_says_there_is_nothing_to_check(viocli_env) -> None:
    from viocli.errors import BadInput

    with pytest.raises(BadInput, match="no deployment exists on this OMS"):
        ops_status.deployment_status(load_settings(), None)


def test_unreadable_files_and_secrets_need_root(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    secret_file = tmp_path / "known_hosts"
    secret_file.write_text("x")
    real_open = open

    def deny(path, *args, **kwargs):
        if Path(path) == secret_file:
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    problem = ops_status._unreadable(secret_file, "the known_hosts of vio-prod")
    assert problem is not None and problem.needs_root
    assert problem.why == f"the known_hosts of vio-prod {secret_file} is readable by root only"
    monkeypatch.setattr("builtins.open", real_open)
    assert ops_status._unreadable(secret_file, "x") is None
    assert not ops_status._unreadable(tmp_path / "missing", "x").needs_root

    def refuse(self):
        raise Refused("cannot read the secrets of vio-prod", hint="run the command with sudo")

    monkeypatch.setattr(ops_status.SecretStore, "load", refuse)
    secrets = ops_status._Secrets(tmp_path, "vio-prod")
    with pytest.raises(Unavailable, match="readable by root only") as caught:
        secrets("keystone_admin_password")
    assert caught.value.needs_root
