"""Fakes for the `deployment status` tests: a node shell answering in the real formats, a fake API.

The canned outputs are what the tools print on Debian 12: ``mysql -N -B`` (tab-separated),
``rabbitmqctl cluster_status --formatter json`` (RabbitMQ 3.10), HAProxy 2.6's ``show stat`` CSV,
``chronyc -n tracking``, ``df -P`` and ``ip -o addr show``. This module also tests their parsers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from viocli.health.api import Check
from viocli.health.balancer import parse_addresses, parse_show_stat
from viocli.health.context import StatusContext, Unavailable
from viocli.health.database import parse_cluster_status, parse_status
from viocli.health.memcached import parse_stats
from viocli.health.nodes import clock_offset, parse_df, parse_tracking
from viocli.health.shell import CommandResult
from viocli.inventory.load import load_inventory
from viocli.inventory.topology import Node, allocate, resolve_nodes

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = "vio-prod"  # inventory/ha.yml: 2 load balancers, 3 database nodes, 2 controllers, 2 computes
CLUSTER_UUID = "c5e2a5e6-8d0c-11ef-9a6f-2f1f6c4b8a11"
EXTERNAL_APIS = [
    ("keystone", 5000),
    ("glance_api", 9292),
    ("placement_api", 8778),
    ("nova_api", 8774),
    ("nova_novncproxy", 6080),
    ("neutron_server", 9696),
    ("cinder_api", 8776),
    ("heat_api", 8004),
    ("heat_api_cfn", 8000),
    ("horizon", 443),
]

# --- canned outputs ----------------------------------------------------------------------------

CHRONY_SYNCED = """\
Reference ID    : 0A140001 (10.20.0.1)
Stratum         : 3
Ref time (UTC)  : Sat Nov 21 10:00:00 2026
System time     : 0.000012345 seconds fast of NTP time
Last offset     : +0.000003456 seconds
RMS offset      : 0.000012345 seconds
Frequency       : 1.234 ppm slow
Residual freq   : +0.001 ppm
Skew            : 0.012 ppm
Root delay      : 0.001234567 seconds
Root dispersion : 0.000123456 seconds
Update interval : 64.2 seconds
Leap status     : Normal
"""
CHRONY_UNSYNCED = """\
Reference ID    : 00000000 ()
Stratum         : 0
Ref time (UTC)  : Thu Jan 01 00:00:00 1970
System time     : 0.000000000 seconds fast of NTP time
Last offset     : +0.000000000 seconds
RMS offset      : 0.000000000 seconds
Frequency       : 0.000 ppm slow
Residual freq   : +0.000 ppm
Skew            : 0.000 ppm
Root delay      : 1.000000000 seconds
Root dispersion : 1.000000000 seconds
Update interval : 0.0 seconds
Leap status     : Not synchronised
"""
CHRONY_NO_DAEMON = CommandResult(1, "", "506 Cannot talk to daemon\n")


def galera(
    size: int = 3, status: str = "Primary", local: str = "Synced", ready: str = "ON", uuid: str = CLUSTER_UUID
) -> CommandResult:
    """``mysql -N -B -e "SHOW GLOBAL STATUS WHERE ..."``: name TAB value, in MariaDB's order."""
    rows = [
        ("wsrep_cluster_size", str(size)),
        ("wsrep_cluster_state_uuid", uuid),
        ("wsrep_cluster_status", status),
        ("wsrep_local_state_comment", local),
        ("wsrep_ready", ready),
    ]
    return CommandResult(0, "".join(f"{k}\t{v}\n" for k, v in rows), "")


MYSQL_DOWN = CommandResult(
    1, "", "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)\n"
)


def rabbitmq(running: list[str], *, partitions: Mapping[str, list[str]] | None = None, alarms=()) -> CommandResult:
    """``rabbitmqctl cluster_status --formatter json`` of RabbitMQ 3.10 (one JSON object, one line)."""
    members = [f"rabbit@database0{i}" for i in (1, 2, 3)]
    doc = {
        "alarms": [{"node": f"rabbit@{n}", "resource": r, "type": "resource_limit"} for n, r in alarms],
        "cluster_name": "rabbit@database01",
        "disk_nodes": members,
        "feature_flags": [{"desc": "Support queues of type `quorum`", "name": "quorum_queue", "state": "enabled"}],
        "listeners": {
            f"rabbit@{n}": [{"interface": "[::]", "node": f"rabbit@{n}", "port": 25672, "protocol": "clustering"}]
            for n in running
        },
        "maintenance_status": {f"rabbit@{n}": "not under maintenance" for n in running},
        "partitions": {f"rabbit@{k}": [f"rabbit@{p}" for p in v] for k, v in (partitions or {}).items()},
        "running_nodes": [f"rabbit@{n}" for n in running],
        "versions": {
            f"rabbit@{n}": {"erlang_version": "25.2.3", "rabbitmq_name": "RabbitMQ", "rabbitmq_version": "3.10.8"}
            for n in running
        },
    }
    return CommandResult(0, json.dumps(doc) + "\n", "")


RABBITMQ_PAUSED = CommandResult(
    69,
    "",
    "Error:\nthis command requires the 'rabbit' app to be running on the target node. "
    "Start it with 'rabbitmqctl start_app'.\n",
)
RABBITMQ_DOWN = CommandResult(
    69,
    "",
    "Error: unable to perform an operation on node 'rabbit@database02'. "
    "Please see diagnostics information and suggestions below.\n",
)

# HAProxy 2.6's show stat columns, up to the ones these tests fill in.
HAPROXY_HEADER_LINE = (
    "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,"
    "act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,"
    "rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,"
    "hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,"
    "last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,"
    "check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo"
)
HAPROXY_HEADER = HAPROXY_HEADER_LINE.split(",")


def _csv_row(**fields: str) -> str:
    return ",".join(fields.get(name, "") for name in HAPROXY_HEADER) + ","


def haproxy_stat(states: Mapping[tuple[str, str], str] | None = None) -> CommandResult:
    """``show stat`` of a load balancer: every API on both VIPs, MariaDB (database01 + 2 backups), stats.

    ``states`` sets a server's status, e.g. ``{("keystone_external", "controller02"): "DOWN"}``.
    """
    states = states or {}
    lines = ["# " + ",".join(HAPROXY_HEADER)]
    lines.append(_csv_row(pxname="stats", svname="FRONTEND", status="OPEN", type="0", mode="http"))
    lines.append(_csv_row(pxname="stats", svname="BACKEND", status="UP", type="1", mode="http"))
    proxies = [(f"{n}_internal", ["controller01", "controller02"]) for n, _ in EXTERNAL_APIS]
    proxies += [(f"{n}_external", ["controller01", "controller02"]) for n, _ in EXTERNAL_APIS]
    proxies.append(("mariadb", ["database01", "database02", "database03"]))
    for proxy, servers in proxies:
        lines.append(_csv_row(pxname=proxy, svname="FRONTEND", status="OPEN", type="0", mode="http"))
        for index, server in enumerate(servers):
            status = states.get((proxy, server), "UP")
            backup = proxy == "mariadb" and index > 0
            check = {"UP": "L7OK", "DOWN": "L7STS", "no check": ""}.get(status, "L7OK")
            lines.append(
                _csv_row(
                    pxname=proxy,
                    svname=server,
                    status=status,
                    weight="1",
                    act="0" if backup else "1",
                    bck="1" if backup else "0",
                    type="2",
                    check_status=check,
                    check_code="503" if status == "DOWN" else "200",
                    last_chk="Service Unavailable" if status == "DOWN" else "OK",
                    addr=f"10.20.0.{105 if server == 'controller01' else 106}:5000",
                    mode="http",
                )
            )
        lines.append(_csv_row(pxname=proxy, svname="BACKEND", status="UP", type="1", mode="http", algo="roundrobin"))
    return CommandResult(0, "\n".join(lines) + "\n\n", "")


HAPROXY_DOWN = CommandResult(
    1, "", '2026/11/21 10:00:00 socat[4242] E connect(5, AF=1 "/run/haproxy/admin.sock", 25): Connection refused\n'
)


def show_ssl_cert(
    not_after: str = "Mar 10 06:00:00 2099 GMT", sha1: str = "5B1D8C3E2F0A9B7C6D5E4F3A2B1C0D9E8F7A6B5C"
) -> CommandResult:
    """``show ssl cert /etc/haproxy/external.pem`` on HAProxy 2.6: what a load balancer serves."""
    return CommandResult(
        0,
        "Filename: /etc/haproxy/external.pem\n"
        "Status: Used\n"
        "Serial: 3A1F0C\n"
        "notBefore: Dec  6 06:00:00 2026 GMT\n"
        f"notAfter: {not_after}\n"
        "Subject Alternative Name: IP Address:192.168.50.90, DNS:openstack.example.com\n"
        "Algorithm: EC256\n"
        f"SHA1 FingerPrint: {sha1}\n"
        "Subject: /CN=openstack.example.com\n"
        "Issuer: /CN=viocli vio-prod CA\n"
        "Chain Subject: /CN=viocli vio-prod CA\n"
        "Chain Issuer: /CN=viocli vio-prod CA\n",
        "",
    )


def ip_addr(mgmt: str, api: str | None, vips: tuple[str, ...] = ()) -> CommandResult:
    """``ip -o addr show`` of a load balancer holding ``vips`` (as keepalived adds them: secondary)."""
    lines = [
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
        "1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever",
        f"2: eth0    inet {mgmt}/24 brd 10.20.0.255 scope global eth0\\       valid_lft forever preferred_lft forever",
    ]
    if api:
        lines.append(
            f"3: eth1    inet {api}/24 brd 192.168.50.255 scope global eth1\\       valid_lft forever "
            "preferred_lft forever"
        )
    for vip in vips:
        device = "eth0" if vip.startswith("10.") else "eth1"
        lines.append(
            f"{2 if device == 'eth0' else 3}: {device}    inet {vip}/24 scope global secondary {device}\\       "
            "valid_lft forever preferred_lft forever"
        )
    lines.append(
        "2: eth0    inet6 fe80::250:56ff:fe01:101/64 scope link \\       valid_lft forever preferred_lft forever"
    )
    return CommandResult(0, "\n".join(lines) + "\n", "")


def df(*mounts: tuple[str, int, int]) -> CommandResult:
    """``df -P`` for (mount, used KiB, available KiB)."""
    lines = ["Filesystem     1024-blocks    Used Available Capacity Mounted on"]
    for mount, used, available in mounts:
        total = used + available
        lines.append(f"/dev/sda1      {total:>11} {used:>7} {available:>9} {-(-used * 100 // total):>7}% {mount}")
    return CommandResult(0, "\n".join(lines) + "\n", "")


def memcached_stats(current: int = 10, limit: int = 4096) -> CommandResult:
    """What the memcached probe prints: memcached's answer to ``stats``."""
    stats = [("pid", "812"), ("uptime", "86400"), ("curr_connections", str(current)), ("max_connections", str(limit))]
    return CommandResult(0, "".join(f"STAT {k} {v}\r\n" for k, v in stats) + "END\r\n", "")


MEMCACHED_REFUSED = CommandResult(
    1,
    "",
    'Traceback (most recent call last):\n  File "<string>", line 2, in <module>\n'
    "ConnectionRefusedError: [Errno 111] Connection refused\n",
)

# --- the fake shell ----------------------------------------------------------------------------

KINDS = (  # in order: "df -P / /var/lib/mysql" is a df
    ("true", "reach"),
    ("df -P", "df"),
    ("chronyc", "time"),
    ("mysql", "galera"),
    ("rabbitmqctl", "rabbitmq"),
    ("python3 -c", "memcached"),
    ("show ssl cert", "cert"),
    ("socat", "haproxy"),
    ("ip -o addr", "ip"),
)
Answer = CommandResult | Callable[[Node, str], CommandResult]


def kind_of(command: str) -> str:
    """Which check a command belongs to (the fake shell answers by kind)."""
    for marker, kind in KINDS:
        if command == marker or (marker != "true" and marker in command):
            return kind
    raise AssertionError(f"unexpected command: {command}")


class FakeShell:
    """A :class:`~viocli.health.shell.NodeShell` of a healthy HA deployment, with per-node overrides.

    ``answers[(node, kind)]`` replaces an answer; a node in ``down`` fails every command as ssh does
    for a dead host. Every call is recorded (thread-safe). ``before`` runs before each answer.
    """

    def __init__(self, nodes: list[Node], *, vips: tuple[str, str] = ("10.20.0.90", "192.168.50.90")):
        self.nodes = {n.name: n for n in nodes}
        self.vips = vips
        self.answers: dict[tuple[str, str], Answer] = {}
        self.down: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.before: Callable[[Node, str], None] | None = None
        self._lock = threading.Lock()

    def run(self, node: Node, command: str, timeout: float = 5.0) -> CommandResult:
        with self._lock:
            self.calls.append((node.name, command))
        if self.before is not None:
            self.before(node, command)
        if node.name in self.down:
            return CommandResult(255, "", f"ssh: connect to host {node.mgmt_ip} port 22: Connection timed out\n")
        kind = kind_of(command)
        answer = self.answers.get((node.name, kind))
        if answer is None:
            return self.healthy(node, kind, command)
        return answer(node, command) if callable(answer) else answer

    def calls_to(self, node: str) -> list[str]:
        return [command for name, command in self.calls if name == node]

    def healthy(self, node: Node, kind: str, command: str) -> CommandResult:
        databases = [n for n in self.nodes if n.startswith("database")]
        if kind == "reach":
            return CommandResult(0, "", "")
        if kind == "time":
            return CommandResult(0, CHRONY_SYNCED, "")
        if kind == "galera":
            return galera(size=len(databases))
        if kind == "rabbitmq":
            return rabbitmq(databases)
        if kind == "memcached":
            return memcached_stats()
        if kind == "haproxy":
            return haproxy_stat()
        if kind == "cert":
            return show_ssl_cert()
        if kind == "ip":
            first = node.name == "loadbalancer01"
            return ip_addr(str(node.mgmt_ip), str(node.api_ip) if node.api_ip else None, self.vips if first else ())
        if kind == "df":
            mounts = [("/", 5_000_000, 15_000_000)]
            if "/var/lib/mysql" in command:
                mounts.append(("/", 5_000_000, 15_000_000))  # same file system: df prints it twice
            return df(*mounts)
        raise AssertionError(kind)


class FakeApi:
    """The APIs through the external VIP: all healthy unless told otherwise."""

    def __init__(self) -> None:
        self.failing: dict[str, str] = {}  # api name -> detail
        self.token_check = Check("keystone token", True, "https://openstack.example.com:5000/v3/auth/tokens: HTTP 201")
        self.token_calls = 0
        self.services: Any = {
            "services": [
                _service(1, "compute-cluster-a"),
                _service(2, "compute-cluster-b"),
            ]
        }
        self.requests: list[tuple[int, str, str]] = []

    def check(self, name: str, port: int) -> Check:
        url = f"https://openstack.example.com:{port}/"
        if name in self.failing:
            return Check(name, False, f"{url}: {self.failing[name]}")
        return Check(name, True, f"{url}: HTTP 200")

    def token(self, user: str, project: str, password: str) -> tuple[Check, str | None]:
        self.token_calls += 1
        return self.token_check, "gAAAAAB-token" if self.token_check.healthy else None

    def get_json(self, port: int, path: str, token: str) -> Any:
        self.requests.append((port, path, token))
        return self.services


def _service(number: int, host: str, state: str = "up", status: str = "enabled", reason=None) -> dict:
    """One entry of GET /v2.1/os-services (microversion 2.1)."""
    return {
        "id": number,
        "binary": "nova-compute",
        "disabled_reason": reason,
        "host": host,
        "state": state,
        "status": status,
        "updated_at": "2026-11-21T10:00:00.000000",
        "forced_down": False,
        "zone": "nova",
    }


service = _service


def ha_deployment() -> tuple[Any, list[Node]]:
    """inventory/ha.yml resolved: its model and its 9 nodes."""
    loaded = load_inventory(REPO / "inventory" / "ha.yml")
    return loaded.model, resolve_nodes(loaded.model, allocate(loaded.model))


def make_context(
    shell: FakeShell | None = None,
    *,
    api: FakeApi | None = None,
    secrets: Mapping[str, str] | Unavailable | None = None,
    power: Callable[[], Mapping[str, str | None]] | None = None,
    shell_problem: Unavailable | None = None,
) -> StatusContext:
    """A status context of inventory/ha.yml over fakes (healthy unless the fakes say otherwise)."""
    model, nodes = ha_deployment()
    values = {"keystone_admin_password": "s3cret-admin", "vcenter_password": "s3cret-vc"}

    def secret(name: str) -> str:
        if isinstance(secrets, Unavailable):
            raise secrets
        stored = values if secrets is None else secrets
        if name not in stored:
            raise Unavailable(f"the secret {name} of {DEPLOYMENT} is not stored", needs_root=False)
        return stored[name]

    def power_states() -> Mapping[str, str | None]:
        secret("vcenter_password")
        return {n.name: "poweredOn" for n in nodes}

    return StatusContext(
        deployment=DEPLOYMENT,
        model=model,
        nodes=nodes,
        shell=shell if shell is not None or shell_problem else FakeShell(nodes),
        secrets=secret,
        power_states=power or power_states,
        api=api or FakeApi(),
        external_apis=EXTERNAL_APIS,
        variables={"memcached_port": 11211},
        shell_problem=shell_problem,
    )


# --- the parsers against the canned formats ----------------------------------------------------


def test_parse_mysql_batch_output() -> None:
    values = parse_status(galera(size=2, local="Donor/Desynced").stdout)
    assert values == {
        "wsrep_cluster_size": "2",
        "wsrep_cluster_state_uuid": CLUSTER_UUID,
        "wsrep_cluster_status": "Primary",
        "wsrep_local_state_comment": "Donor/Desynced",
        "wsrep_ready": "ON",
    }


def test_parse_rabbitmq_json_with_a_banner_before_it() -> None:
    text = "Cluster status of node rabbit@database01 ...\n" + rabbitmq(["database01", "database02"]).stdout
    doc = parse_cluster_status(text)
    assert doc["running_nodes"] == ["rabbit@database01", "rabbit@database02"]
    assert doc["partitions"] == {} and doc["alarms"] == []


def test_parse_haproxy_show_stat() -> None:
    rows = parse_show_stat(haproxy_stat({("keystone_external", "controller02"): "DOWN"}).stdout)
    row = next(r for r in rows if r["pxname"] == "keystone_external" and r["svname"] == "controller02")
    assert row["status"] == "DOWN" and row["check_status"] == "L7STS"
    assert {r["svname"] for r in rows if r["pxname"] == "mariadb"} >= {"database02", "BACKEND"}


def test_parse_chrony_tracking() -> None:
    fields = parse_tracking(CHRONY_SYNCED)
    assert fields["Leap status"] == "Normal"
    assert fields["Reference ID"] == "0A140001 (10.20.0.1)"
    assert clock_offset(fields["System time"]) == 0.000012345
    assert clock_offset("1.500000000 seconds slow of NTP time") == -1.5


def test_parse_df_and_addresses_and_memcached_stats() -> None:
    assert parse_df(df(("/", 900, 100), ("/var/lib/mysql", 10, 90)).stdout) == [
        ("/", 900, 100),
        ("/var/lib/mysql", 10, 90),
    ]
    addresses = parse_addresses(ip_addr("10.20.0.100", "192.168.50.100", ("10.20.0.90",)).stdout)
    assert addresses == {"127.0.0.1", "::1", "10.20.0.100", "192.168.50.100", "10.20.0.90", "fe80::250:56ff:fe01:101"}
    assert parse_stats(memcached_stats(current=7).stdout)["curr_connections"] == "7"
