"""TLS inside the control plane (issue 15, inventory ``internal_tls``, on in inventory/lab-ha.yml): the
catalog's internal endpoints are https, and from another node a plain AMQP or MySQL connection is
refused while a TLS one verified against the deployment's CA is served.

Read-only on the session's shared HA deployment. Needs root and the lab.
"""

from __future__ import annotations

import json
import shlex

import pytest

from tests.lab.conftest import HA
from tests.lab.oms import CONTROLLERS, DATABASES, EXTERNAL_VIP, INTERNAL_VIP, on_node_run, openstack, secrets_file

pytestmark = [pytest.mark.lab, pytest.mark.slow]

CA_ON_NODES = "/etc/viocli/tls/ca.pem"  # playbooks/group_vars/all/tls.yml viocli_ca_file

# Run on a controller (another node than the database nodes): each probe's outcome as one JSON line.
# The password comes on stdin, never on a command line.
PROBE = r"""
import json, socket, ssl, sys
import pymysql

password = sys.stdin.readline().rstrip("\n")
vip, ca, databases = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
out = {}

def mysql(**tls):
    try:
        connection = pymysql.connect(
            host=vip, user="nova", password=password, database="nova", connect_timeout=5, **tls
        )
        with connection.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            return "served: " + cursor.fetchone()[1]
    except Exception as error:
        return f"refused: {error}"

out["mysql plain"] = mysql()
out["mysql tls"] = mysql(ssl={"ca": ca})
for node in databases:
    try:
        socket.create_connection((node, 5672), timeout=5).close()
        out[f"{node}:5672"] = "served"
    except OSError as error:
        out[f"{node}:5672"] = f"refused: {error}"
    try:
        raw = socket.create_connection((node, 5671), timeout=5)
        raw.settimeout(5)
        raw.sendall(b"AMQP\x00\x00\x09\x01")
        answer = raw.recv(8)
        out[f"{node}:5671 plain"] = "served" if answer.startswith(b"\x01") else f"refused: {answer!r}"
    except OSError as error:
        out[f"{node}:5671 plain"] = f"refused: {error}"
    context = ssl.create_default_context(cafile=ca)
    with context.wrap_socket(socket.create_connection((node, 5671), timeout=5), server_hostname=node) as tls:
        tls.sendall(b"AMQP\x00\x00\x09\x01")
        out[f"{node}:5671 tls"] = "served" if tls.recv(8).startswith(b"\x01") else "no AMQP answer"
print(json.dumps(out))
"""


def _secret(env: dict[str, str], name: str) -> str:
    import yaml

    return str(yaml.safe_load(secrets_file(env, HA).read_text())[name])


def test_internal_endpoints_are_https(ha) -> None:
    env, _, _ = ha
    conn = openstack(env, HA, EXTERNAL_VIP)
    internal = [e for e in conn.identity.endpoints() if e.interface == "internal"]
    assert len(internal) >= 8
    assert all(e.url.startswith(f"https://{INTERNAL_VIP}:") for e in internal), [e.url for e in internal]


def test_plain_amqp_and_mysql_are_refused_from_another_node(ha) -> None:
    env, _, _ = ha
    done = on_node_run(
        env,
        HA,
        CONTROLLERS[0],
        f"python3 -c {shlex.quote(PROBE)} {INTERNAL_VIP} {CA_ON_NODES} {','.join(DATABASES)}",
        stdin=_secret(env, "nova_db_password") + "\n",
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["mysql plain"].startswith("refused: (1045"), seen
    assert seen["mysql tls"].startswith("served: TLS_"), seen
    for node in DATABASES:
        assert seen[f"{node}:5672"].startswith("refused"), seen
        assert seen[f"{node}:5671 plain"].startswith("refused"), seen
        assert seen[f"{node}:5671 tls"] == "served", seen
