"""Each collector of `deployment status`: SUCCESS, WARNING and FAILURE, each failure naming its node."""

from __future__ import annotations

import datetime

import pytest

from viocli.errors import OperationFailed
from viocli.health import balancer, certificates, database, memcached, nodes, openstack, vcenter
from viocli.health.api import Check
from viocli.health.collectors import COLLECTORS, run_collectors
from viocli.health.context import Unavailable
from viocli.health.result import Status
from viocli.health.shell import CommandResult

from .test_status_fakes import (
    CHRONY_NO_DAEMON,
    CHRONY_SYNCED,
    CHRONY_UNSYNCED,
    DEPLOYMENT,
    HAPROXY_DOWN,
    MEMCACHED_REFUSED,
    MYSQL_DOWN,
    RABBITMQ_DOWN,
    RABBITMQ_PAUSED,
    FakeApi,
    FakeShell,
    df,
    galera,
    ha_deployment,
    haproxy_stat,
    ip_addr,
    make_context,
    memcached_stats,
    rabbitmq,
    service,
    show_ssl_cert,
)


def _shell() -> FakeShell:
    return FakeShell(ha_deployment()[1])


def test_a_healthy_deployment_is_success_everywhere() -> None:
    results = run_collectors(make_context())
    assert [r.collector_name for r in results] == [c.name for c in COLLECTORS]
    assert {r.collector_name: str(r.overall_status) for r in results} == {c.name: "SUCCESS" for c in COLLECTORS}
    assert len(COLLECTORS) == 12
    assert all(r.nodes == [] and r.action == "" for r in results)


# --- VerifyVMPowerState --------------------------------------------------------------------------
def test_power_state_names_the_powered_off_vm() -> None:
    ctx = make_context(
        power=lambda: {n.name: "poweredOff" if n.name == "controller02" else "poweredOn" for n in ctx.nodes}
    )
    result = vcenter.verify_vm_power_state(ctx)
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["controller02"]
    assert "vio-prod-Controller-1 is poweredOff" in result.message
    assert result.action == f"sudo viocli deployment start -d {DEPLOYMENT}"


def test_power_state_missing_vm_and_vcenter_errors() -> None:
    ctx = make_context(power=lambda: {n.name: None if n.name == "compute02" else "poweredOn" for n in ctx.nodes})
    result = vcenter.verify_vm_power_state(ctx)
    assert result.nodes == ["compute02"] and "no VM vio-prod-ComputeDriver-1" in result.message
    assert "recover -n compute02" in result.action

    def refused():
        raise OperationFailed("cannot reach vCenter vcenter.example.com:443: timed out", hint="check vcenter.host")

    result = vcenter.verify_vm_power_state(make_context(power=refused))
    assert result.overall_status is Status.FAILURE and "cannot reach vCenter" in result.message


def test_power_state_without_the_vcenter_password_is_a_warning_to_run_as_root() -> None:
    ctx = make_context(secrets=Unavailable("the secrets store of vio-prod is readable by root only"))
    result = run_collectors(ctx, [c for c in COLLECTORS if c.name == vcenter.POWER])[0]
    assert result.overall_status is Status.WARNING
    assert result.message.startswith("run as root to check the VMs' power state in vCenter")


# --- VerifyNodeReachable -------------------------------------------------------------------------
def test_reachability_names_the_node_that_does_not_answer() -> None:
    shell = _shell()
    shell.down.add("database03")
    result = nodes.verify_node_reachable(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["database03"]
    assert "database03 (10.20.0.104) does not answer SSH: ssh: connect to host" in result.message
    assert "deployment start" in result.action


def test_reachability_tells_a_host_key_mismatch() -> None:
    shell = _shell()
    shell.answers[("controller01", "reach")] = CommandResult(255, "", "Host key verification failed.\n")
    result = nodes.verify_node_reachable(make_context(shell))
    assert result.nodes == ["controller01"]
    assert "recover -n controller01" in result.action


# --- VerifyTimeSynchronization -------------------------------------------------------------------
def test_time_problems_are_warnings_never_failures() -> None:
    shell = _shell()
    shell.answers[("database02", "time")] = CommandResult(0, CHRONY_UNSYNCED, "")
    shell.answers[("compute01", "time")] = CHRONY_NO_DAEMON
    shell.answers[("controller01", "time")] = CommandResult(
        0, CHRONY_SYNCED.replace("0.000012345 seconds fast", "2.500000000 seconds slow"), ""
    )
    result = nodes.verify_time_synchronization(make_context(shell))
    assert result.overall_status is Status.WARNING
    assert result.nodes == ["compute01", "controller01", "database02"]
    assert "database02: clock not synchronised (leap status: Not synchronised)" in result.message
    assert "compute01: chronyd does not answer (506 Cannot talk to daemon)" in result.message
    assert "controller01: clock 2.500 s behind NTP time" in result.message
    assert "--tags common_chrony" in result.action


# --- VerifyGaleraCluster -------------------------------------------------------------------------
def test_galera_names_the_node_whose_mysqld_is_down() -> None:
    shell = _shell()
    shell.answers[("database02", "galera")] = MYSQL_DOWN
    for node in ("database01", "database03"):
        shell.answers[(node, "galera")] = galera(size=2)
    result = database.verify_galera_cluster(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["database02"]
    assert "database02: mysqld does not answer (ERROR 2002" in result.message
    assert result.action == f"sudo viocli services start --service mariadb --node database02 -d {DEPLOYMENT}"


def test_galera_with_no_primary_component_asks_for_a_deployment_start() -> None:
    shell = _shell()
    shell.answers[("database01", "galera")] = galera(size=1, status="non-Primary", local="Initialized", ready="OFF")
    shell.answers[("database02", "galera")] = galera(size=1, status="non-Primary", local="Initialized", ready="OFF")
    shell.answers[("database03", "galera")] = MYSQL_DOWN
    result = database.verify_galera_cluster(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["database01", "database02", "database03"]
    assert "no database node is in a Primary component" in result.message
    assert result.action.startswith(f"sudo viocli deployment start -d {DEPLOYMENT}")


def test_galera_donor_joiner_other_cluster_and_size() -> None:
    shell = _shell()
    shell.answers[("database02", "galera")] = galera(local="Joiner")
    shell.answers[("database03", "galera")] = galera(size=1, uuid="0f0f0f0f-0000-11ef-0000-000000000000")
    result = database.verify_galera_cluster(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["database02", "database03"]
    assert "database02: Joiner, not Synced" in result.message
    assert "database03: in another cluster" in result.message
    assert "--service mariadb --node database03" in result.action

    shell = _shell()
    for node in ("database01", "database02", "database03"):
        shell.answers[(node, "galera")] = galera(size=2)
    result = database.verify_galera_cluster(make_context(shell))
    assert result.overall_status is Status.FAILURE and "the cluster has 2 members" in result.message


# --- VerifyRabbitMQCluster -----------------------------------------------------------------------
def test_rabbitmq_names_the_node_cut_off_by_pause_minority() -> None:
    shell = _shell()
    shell.answers[("database01", "rabbitmq")] = rabbitmq(["database01", "database02"])
    shell.answers[("database02", "rabbitmq")] = rabbitmq(["database01", "database02"])
    shell.answers[("database03", "rabbitmq")] = RABBITMQ_PAUSED
    result = database.verify_rabbitmq_cluster(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["database03"]
    assert "not running in the cluster of database01, database02" in result.message
    assert result.action == f"sudo viocli services restart --service rabbitmq --node database03 -d {DEPLOYMENT}"


def test_rabbitmq_names_the_minority_side_of_a_partition() -> None:
    shell = _shell()
    majority = rabbitmq(["database01", "database02"], partitions={"database01": ["database03"]})
    shell.answers[("database01", "rabbitmq")] = majority
    shell.answers[("database02", "rabbitmq")] = rabbitmq(["database01", "database02"])
    shell.answers[("database03", "rabbitmq")] = rabbitmq(
        ["database03"], partitions={"database03": ["database01", "database02"]}
    )
    result = database.verify_rabbitmq_cluster(make_context(shell))
    assert result.nodes == ["database03"]
    assert "network partition between database01 and database03" in result.message


def test_rabbitmq_down_and_alarms() -> None:
    shell = _shell()
    everyone_but_2 = rabbitmq(["database01", "database03"], alarms=[("database03", "memory")])
    shell.answers[("database01", "rabbitmq")] = everyone_but_2
    shell.answers[("database02", "rabbitmq")] = RABBITMQ_DOWN
    shell.answers[("database03", "rabbitmq")] = everyone_but_2
    result = database.verify_rabbitmq_cluster(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["database02", "database03"]
    assert "database02: RabbitMQ does not answer (Error: unable to perform" in result.message
    assert "database03: memory alarm" in result.message


# --- VerifyMemcached -----------------------------------------------------------------------------
def test_memcached_names_the_controller_where_it_does_not_answer() -> None:
    shell = _shell()
    shell.answers[("controller02", "memcached")] = MEMCACHED_REFUSED
    shell.answers[("controller01", "memcached")] = memcached_stats(current=4000, limit=4096)
    result = memcached.verify_memcached(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["controller01", "controller02"]
    assert "controller02: memcached does not answer on 10.20.0.106:11211 (ConnectionRefusedError" in result.message
    assert "controller01: memcached has 4000 of its 4096 connections in use" in result.message
    commands = [c for c in shell.calls_to("controller02") if "python3" in c]
    assert commands and commands[0].endswith(" 10.20.0.106 11211")


# --- VerifyHAProxyBackends -----------------------------------------------------------------------
def test_haproxy_names_the_down_server_and_the_load_balancers() -> None:
    shell = _shell()
    down = haproxy_stat({("keystone_external", "controller02"): "DOWN", ("keystone_internal", "controller02"): "DOWN"})
    shell.answers[("loadbalancer01", "haproxy")] = down
    shell.answers[("loadbalancer02", "haproxy")] = down
    result = balancer.verify_haproxy_backends(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["controller02"]
    assert result.message.startswith("controller02: keystone DOWN in HAProxy on loadbalancer01, loadbalancer02")
    assert result.action == f"sudo viocli services restart --service keystone --node controller02 -d {DEPLOYMENT}"


def test_haproxy_down_on_a_load_balancer_names_it() -> None:
    shell = _shell()
    shell.answers[("loadbalancer02", "haproxy")] = HAPROXY_DOWN
    result = balancer.verify_haproxy_backends(make_context(shell))
    assert result.nodes == ["loadbalancer02"]
    assert "loadbalancer02: HAProxy does not answer on /run/haproxy/admin.sock" in result.message
    assert "Connection refused" in result.message


def test_haproxy_maint_fails_drain_warns_no_check_is_fine() -> None:
    shell = _shell()
    shell.answers[("loadbalancer01", "haproxy")] = haproxy_stat(
        {("glance_api_internal", "controller01"): "MAINT", ("mariadb", "database02"): "no check"}
    )
    result = balancer.verify_haproxy_backends(make_context(shell))
    assert result.overall_status is Status.FAILURE and result.nodes == ["controller01"]
    assert "glance_api MAINT in HAProxy on loadbalancer01" in result.message

    shell = _shell()
    shell.answers[("loadbalancer01", "haproxy")] = haproxy_stat({("nova_api_internal", "controller01"): "DRAIN"})
    result = balancer.verify_haproxy_backends(make_context(shell))
    assert result.overall_status is Status.WARNING and result.nodes == ["controller01"]


# --- VerifyVIPs ----------------------------------------------------------------------------------
def test_vip_held_by_nobody_or_by_both() -> None:
    _, all_nodes = ha_deployment()
    lb1, lb2 = (n for n in all_nodes if n.role == "loadbalancer")
    shell = FakeShell(all_nodes)
    shell.answers[("loadbalancer01", "ip")] = ip_addr(str(lb1.mgmt_ip), str(lb1.api_ip), ("10.20.0.90",))
    result = balancer.verify_vips(make_context(shell))
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["loadbalancer01", "loadbalancer02"]
    assert "the external VIP 192.168.50.90 is held by no load balancer" in result.message
    assert "--service keepalived --node loadbalancer01" in result.action

    shell = FakeShell(all_nodes)
    shell.answers[("loadbalancer02", "ip")] = ip_addr(str(lb2.mgmt_ip), str(lb2.api_ip), ("192.168.50.90",))
    result = balancer.verify_vips(make_context(shell))
    assert "the external VIP 192.168.50.90 is held by loadbalancer01 and loadbalancer02 at once" in result.message
    assert "internal" not in result.message


# --- VerifyCertificates --------------------------------------------------------------------------
NOW = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)


def test_certificate_same_everywhere_tells_subject_issuer_and_expiry() -> None:
    result = certificates.verify_certificates(make_context(_shell()), now=NOW)
    assert result.overall_status is Status.SUCCESS
    assert result.message.startswith("CN=openstack.example.com, issued by CN=viocli vio-prod CA, expires 2099-03-10")
    assert result.message.endswith("the same on 2 load balancers")
    assert len(result.details) == 2 and all("SHA-1 5B1D8C3E" in d for d in result.details)


def test_certificate_under_30_days_is_a_warning_and_expired_a_failure() -> None:
    shell = _shell()
    for lb in ("loadbalancer01", "loadbalancer02"):
        shell.answers[(lb, "cert")] = show_ssl_cert(not_after="Jan 13 00:00:00 2027 GMT")
    result = certificates.verify_certificates(make_context(shell), now=NOW)
    assert result.overall_status is Status.WARNING
    assert "loadbalancer01: the external certificate expires in 12 days (2027-01-13)" in result.message
    assert "cert-req-create" in result.action

    shell.answers[("loadbalancer02", "cert")] = show_ssl_cert(not_after="Dec 31 00:00:00 2026 GMT")
    result = certificates.verify_certificates(make_context(shell), now=NOW)
    assert result.overall_status is Status.FAILURE
    assert "loadbalancer02: the external certificate expired on 2026-12-31" in result.message


def test_load_balancers_serving_different_certificates_fail() -> None:
    shell = _shell()
    shell.answers[("loadbalancer02", "cert")] = show_ssl_cert(sha1="00112233445566778899AABBCCDDEEFF00112233")
    result = certificates.verify_certificates(make_context(shell), now=NOW)
    assert result.overall_status is Status.FAILURE
    assert result.message.startswith("the load balancers serve different external certificates")
    assert result.nodes == ["loadbalancer01", "loadbalancer02"]
    assert (
        result.action
        == f"serve the recorded one everywhere: sudo viocli deployment configure -d {DEPLOYMENT} -t haproxy"
    )


def test_a_load_balancer_whose_haproxy_does_not_answer_is_a_warning() -> None:
    shell = _shell()
    shell.answers[("loadbalancer01", "cert")] = CommandResult(1, "", "connect: No such file or directory")
    result = certificates.verify_certificates(make_context(shell), now=NOW)
    assert result.overall_status is Status.WARNING
    assert result.nodes == ["loadbalancer01"]
    assert "HAProxy does not say which certificate it serves" in result.message


# --- VerifyOpenStackAPIs -------------------------------------------------------------------------
def test_apis_one_failing_and_the_token() -> None:
    api = FakeApi()
    api.failing["heat_api"] = "HTTP 503"
    result = openstack.verify_openstack_apis(make_context(api=api))
    assert result.overall_status is Status.FAILURE
    assert result.message == "heat_api: https://openstack.example.com:8004/: HTTP 503"
    assert result.nodes == ["controller01", "controller02"]

    api = FakeApi()
    api.token_check = Check("keystone token", False, "https://openstack.example.com:5000/v3/auth/tokens: HTTP 401")
    result = openstack.verify_openstack_apis(make_context(api=api))
    assert result.overall_status is Status.FAILURE and "Keystone issues no token to admin" in result.message


def test_apis_without_the_admin_password_check_the_apis_and_warn_about_the_token() -> None:
    ctx = make_context(secrets=Unavailable("the secrets store of vio-prod is readable by root only"))
    result = openstack.verify_openstack_apis(ctx)
    assert result.overall_status is Status.WARNING
    assert result.message.startswith("run as root to check that Keystone issues the admin a token")
    api = FakeApi()
    api.failing["keystone"] = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    ctx = make_context(api=api, secrets=Unavailable("readable by root only"))
    assert openstack.verify_openstack_apis(ctx).overall_status is Status.FAILURE


# --- VerifyNovaComputeServices -------------------------------------------------------------------
def test_nova_compute_down_disabled_missing() -> None:
    api = FakeApi()
    api.services = {"services": [service(1, "compute-cluster-a"), service(2, "compute-cluster-b", state="down")]}
    ctx = make_context(api=api)
    result = openstack.verify_nova_compute_services(ctx)
    assert result.overall_status is Status.FAILURE
    assert result.nodes == ["compute02"]
    assert "nova-compute of cluster compute-cluster-b (host compute-cluster-b on compute02) is down" in result.message
    assert api.requests == [(8774, "/v2.1/os-services?binary=nova-compute", "gAAAAAB-token")]

    api = FakeApi()
    api.services = {"services": [service(1, "compute-cluster-a", status="disabled", reason="maintenance")]}
    result = openstack.verify_nova_compute_services(make_context(api=api))
    assert result.overall_status is Status.FAILURE
    assert "compute-cluster-b (host compute-cluster-b on compute02) is not registered" in result.message
    assert "is disabled (maintenance)" in result.message

    api = FakeApi()
    api.services = {"services": [service(1, "compute-cluster-a", status="disabled"), service(2, "compute-cluster-b")]}
    result = openstack.verify_nova_compute_services(make_context(api=api))
    assert result.overall_status is Status.WARNING and result.nodes == ["compute01"]


def test_nova_compute_without_a_token_is_not_checked() -> None:
    api = FakeApi()
    api.token_check = Check("keystone token", False, "https://openstack.example.com:5000/v3/auth/tokens: HTTP 503")
    ctx = make_context(api=api)
    result = openstack.verify_nova_compute_services(ctx)
    assert result.overall_status is Status.WARNING and "no admin token" in result.message
    openstack.verify_openstack_apis(ctx)
    assert api.token_calls == 1, "one token per run, shared by the collectors"


# --- VerifyDiskSpace -----------------------------------------------------------------------------
@pytest.mark.parametrize(("free", "status"), [(20.0, Status.SUCCESS), (10.0, Status.WARNING), (3.0, Status.FAILURE)])
def test_disk_space_thresholds(free: float, status: Status) -> None:
    shell = _shell()
    available = int(free * 1000)
    shell.answers[("database02", "df")] = df(
        ("/", 5_000_000, 15_000_000), ("/var/lib/mysql", 100_000 - available, available)
    )
    result = nodes.verify_disk_space(make_context(shell))
    assert result.overall_status is status
    if status is not Status.SUCCESS:
        assert result.nodes == ["database02"]
        assert f"database02: /var/lib/mysql has {free:.1f}% free" in result.message
    assert "df -P / /var/lib/mysql" in shell.calls_to("database02")
    assert "df -P /" in shell.calls_to("controller01")
