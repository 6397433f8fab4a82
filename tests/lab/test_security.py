"""Secrets on the shared HA deployment: never on a command line, never plain in Galera, rotated for real.

While ``secrets rotate`` replaces three secrets and pushes two set by hand, a sampler
reads every /proc/*/cmdline and /proc/*/environ of the OMS and of every node as often as it can; it
must never see a secret. Then the cloud is checked as an operator would: the new values log in (admin
token through the external VIP, nova's database and RabbitMQ users), the old ones no longer do, no DB
password is in any member's galera.cache, and HAProxy's statistics page wants its password.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.lab.conftest import HA, configure, secrets_sampler
from tests.lab.oms import (
    CONTROLLERS,
    DATABASES,
    EXTERNAL_VIP,
    INTERNAL_VIP,
    LOADBALANCERS,
    check_openstack,
    daemons,
    on_node,
    on_node_run,
    openstack,
    run_viocli,
    secrets_file,
    wait_computes_up,
)
from tests.lab.sampler import flatten

pytestmark = [pytest.mark.lab, pytest.mark.slow]

HAND_SET = (
    "keystone_admin_password",
    "nova_db_password",
    "nova_rabbitmq_password",
    "glance_keystone_password",
    "haproxy_stats_password",
)
ROTATED = ("keystone_admin_password", "nova_db_password", "nova_rabbitmq_password")


def _secrets(env: dict[str, str]) -> dict:
    return yaml.safe_load(secrets_file(env, HA).read_text())


def _mysql_login(env: dict[str, str], user: str, password: str) -> bool:
    """Log in to MariaDB through the internal VIP; the password goes on stdin, never on argv."""
    result = on_node_run(
        env,
        HA,
        DATABASES[0],
        f"mysql --defaults-extra-file=/dev/stdin -h {INTERNAL_VIP} -u {user} -N -e 'SELECT 1'",
        stdin=f"[client]\npassword={password}\n",
    )
    return result.returncode == 0 and result.stdout.strip() == "1"


def _rabbitmq_login(env: dict[str, str], user: str, password: str) -> bool:
    """Authenticate against the RabbitMQ cluster; the password goes on stdin."""
    return (
        on_node_run(env, HA, DATABASES[1], f"rabbitmqctl --quiet authenticate_user {user}", stdin=password).returncode
        == 0
    )


def _keystone_login(env: dict[str, str], password: str) -> int:
    """The HTTP status of a password authentication as admin through the external VIP (TLS verified)."""
    ca = Path(env["VIOCLI_STATE_DIR"]) / "deployments" / HA / "tls" / "external-ca.pem"
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"id": "default"}, "password": password}}}}}  # fmt: skip
    request = urllib.request.Request(
        f"https://{EXTERNAL_VIP}:5000/v3/auth/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(ca)), timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def _in_galera_cache(env: dict[str, str], values: list[str]) -> list[str]:
    """Which DB nodes hold any of ``values`` in galera.cache, the replication cache (searched on the node).

    Nova's cell mappings are the usual culprit: stored with full URLs, they carry the nova database and
    RabbitMQ passwords into every member's cache; viocli stores them as templates.
    """
    script = "grep -c -a -F -f /dev/stdin /var/lib/mysql/galera.cache || true"
    return [
        node for node in DATABASES if on_node_run(env, HA, node, script, stdin="\n".join(values)).stdout.strip() != "0"
    ]


def _stats_page(address: str, password: str | None) -> int:
    request = urllib.request.Request(f"http://{address}:1936/")
    if password is not None:
        token = base64.b64encode(f"viocli:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def _set_secret(env: dict[str, str], name: str, value: str) -> None:
    """``viocli secrets set NAME`` with the value piped on stdin, as an operator does it."""
    result = subprocess.run(
        [sys.executable, "-m", "viocli", "secrets", "set", name, "-d", HA],
        input=value + "\n",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_hand_set_and_rotated_secrets_are_pushed_work_and_none_is_ever_on_a_command_line(ha) -> None:
    """Two secrets set by hand and three rotated reach the nodes in the one configure ``secrets rotate``
    runs (CI time: one run instead of two), with the sampler watching every process of every node."""
    env, _, _ = ha
    hand_set = [name for name in HAND_SET if name not in ROTATED]
    sentinels = {name: f"Sentinel{name.replace('_', '')}{secrets.token_hex(8)}" for name in hand_set}
    for name, value in sentinels.items():
        _set_secret(env, name, value)
    old = {name: _secrets(env)[name] for name in ROTATED}
    nodes = (*CONTROLLERS, DATABASES[0], LOADBALANCERS[0])
    before = {node: daemons(env, HA, node) for node in nodes}

    with secrets_sampler(env, HA) as sampler:
        result = run_viocli(env, "secrets", "rotate", *ROTATED, "-d", HA)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"rotated 3 secrets of {HA}: keystone_admin_password, nova_db_password, ")
    assert sampler.hits == [], sampler.hits
    assert sampler.passes > 50, f"the sampler looked only {sampler.passes} times"
    new = {name: _secrets(env)[name] for name in ROTATED}
    assert all(new[name] != old[name] for name in ROTATED)
    shown = result.stdout + result.stderr
    assert all(value not in shown for value in [*old.values(), *new.values(), *sentinels.values()])
    # Only what reads a changed secret restarted: nova's services (the rotated ones; the admin password
    # is in no file), glance's (its Keystone password) and HAProxy (its statistics password).
    restarted = {args for node in nodes for _, _, args in before[node] - daemons(env, HA, node)}
    readers = ("nova", "glance", "haproxy")
    assert restarted and all(any(r in args for r in readers) for args in restarted), restarted
    assert not [args for args in restarted if any(o in args for o in ("keystone", "neutron", "cinder", "heat"))]

    # The hand-set values work.
    check_openstack(env, HA, EXTERNAL_VIP, compute_hosts=2)  # glance works with its new Keystone password
    for balancer in LOADBALANCERS:
        assert _stats_page(balancer, None) == 401
        assert _stats_page(balancer, "wrong-password") == 401
        assert _stats_page(balancer, sentinels["haproxy_stats_password"]) == 200
    # The rotated values work, the old ones no longer do.
    assert _keystone_login(env, new["keystone_admin_password"]) == 201
    assert _keystone_login(env, old["keystone_admin_password"]) == 401
    assert _mysql_login(env, "nova", new["nova_db_password"])
    assert not _mysql_login(env, "nova", old["nova_db_password"])
    assert _rabbitmq_login(env, "nova", new["nova_rabbitmq_password"])
    assert not _rabbitmq_login(env, "nova", old["nova_rabbitmq_password"])
    assert _in_galera_cache(env, list(flatten(_secrets(env)).values()) + list(old.values())) == [], (
        "a secret is in galera.cache"
    )
    # nova's API, conductor and both nova-computes run on the new database and RabbitMQ passwords.
    conn = openstack(env, HA, EXTERNAL_VIP)
    wait_computes_up(conn, 2)
    assert {s.binary for s in conn.compute.services()} >= {"nova-scheduler", "nova-conductor", "nova-compute"}
    flavor = conn.compute.create_flavor(name="rotate-check", ram=512, vcpus=1, disk=1)  # a write to nova_api
    assert conn.compute.find_flavor("rotate-check").id == flavor.id
    conn.compute.delete_flavor(flavor)
    assert on_node(env, HA, DATABASES[0], "mysql -N -e \"SHOW STATUS LIKE 'wsrep_cluster_size'\"").split() == [
        "wsrep_cluster_size",
        "3",
    ]
    # The roles of every consumer of the five secrets (CI time: 40 s, where a whole configure takes 90).
    consumers = "mariadb,rabbitmq,keystone,glance,nova,haproxy"
    assert configure(env, HA, "-t", consumers) == 0, "the pushed values are now what the nodes hold"
