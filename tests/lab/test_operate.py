"""Operating the HA deployment (issue 9): restarts that never take an API down, and that happen even
when the run that changed a file died before restarting its service.

Each scenario runs on the session's shared HA deployment and leaves it healthy (its own ``finally``,
checked by ``deployment status``). Needs root and the lab.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.lab.clients import ApiClientLoop, RowWriterLoop
from tests.lab.conftest import HA, configure
from tests.lab.oms import (
    CONTROLLERS,
    DATABASES,
    EXTERNAL_VIP,
    admin_password,
    external_ca,
    file_mtime,
    on_node,
    status_json,
    unit_started,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# custom.yml lines that change only keystone's and nova-api's uwsgi files and keystone.conf: a
# configure with them restarts keystone and nova-api on both controllers, and nothing else.
CHANGE = "keystone_token_expiration: 7200\nkeystone_workers: 2\nnova_api_workers: 2\n"
# Only the roles that read them (the rolling restart of the controllers runs with any tags).
TAGS = ("-t", "keystone,nova")


def _healthy(env: dict[str, str]) -> None:
    failed = [r for r in status_json(env, HA) if r["overall_status"] == "FAILURE"]
    assert failed == [], failed


def _configure_until_rendered(env: dict[str, str], address: str, path: str, text: str) -> None:
    """Start ``deployment configure`` and SIGKILL it (and its Ansible) once ``path`` on the node holds
    ``text``: the file is rendered, the rolling restart at the end of the run has not happened."""
    run = subprocess.Popen(
        [sys.executable, "-m", "viocli", "deployment", "configure", "-d", HA, *TAGS],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and run.poll() is None:
            if text in on_node(env, HA, address, f"cat {path}"):
                break
            time.sleep(0.5)  # no event to wait on for a file on another node
        assert run.poll() is None, "configure ended before it rendered the file"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()


def test_changed_files_restart_their_services_one_controller_at_a_time_without_a_failed_request(ha) -> None:
    env, inventories, _ = ha
    custom = inventories / "custom-lab.yml"
    original = custom.read_text()
    client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA))
    try:
        with client:
            custom.write_text(original + CHANGE)
            before = {c: unit_started(env, HA, c, "keystone") for c in CONTROLLERS}

            # 1. A run dies after rendering keystone.conf, before restarting Keystone.
            _configure_until_rendered(env, CONTROLLERS[0], "/etc/keystone/keystone.conf", "expiration = 7200")
            rendered = file_mtime(env, HA, CONTROLLERS[0], "/etc/keystone/keystone.conf")
            assert unit_started(env, HA, CONTROLLERS[0], "keystone") == before[CONTROLLERS[0]] < rendered

            # 2. The next run restarts it (and nova-api), though it changes no file keystone reads.
            assert configure(env, HA, *TAGS) > 0
            for controller in CONTROLLERS:
                for unit, path in (
                    ("keystone", "/etc/keystone/keystone.conf"),
                    ("keystone", "/etc/keystone/keystone-uwsgi.ini"),
                    ("nova-api", "/etc/nova/nova-api-uwsgi.ini"),
                ):
                    assert unit_started(env, HA, controller, unit) >= file_mtime(env, HA, controller, path), (
                        controller,
                        unit,
                    )
                # what runs is the new configuration: two uwsgi workers under each master
                workers = on_node(env, HA, controller, "pgrep -c -f 'uwsgi.*nova-api-uwsgi.ini'").strip()
                assert int(workers) == 3, f"{controller}: nova-api runs {workers} uwsgi processes, not 1 master + 2"
            # Keystone issues tokens that live 7200 s: the new keystone.conf is the one that runs.
            lifetime = _token_lifetime(env)
            assert 7100 < lifetime <= 7200, lifetime
            # 3. A run with nothing stale restarts nothing.
            started = {c: unit_started(env, HA, c, "keystone") for c in CONTROLLERS}
            assert configure(env, HA, *TAGS) == 0
            assert {c: unit_started(env, HA, c, "keystone") for c in CONTROLLERS} == started
        assert len(client.records) > 50, "the client loop barely ran"
        assert client.failures == [], client.failures[:5]
    finally:
        custom.write_text(original)
        configure(env, HA, *TAGS)
        _healthy(env)


def test_a_changed_mariadb_setting_restarts_every_member_drained_without_a_failed_request(ha, writer_account) -> None:
    """configure restarts each Galera member whose my.cnf changed, one at a time, each out of HAProxy's
    mariadb backend and left by its clients first: no request through the external VIP fails and no
    acknowledged row is lost (before, the active member's restart cut the queries running on it)."""
    env, inventories, _ = ha
    custom = inventories / "custom-lab.yml"
    original = custom.read_text()
    before = {db: unit_started(env, HA, db, "mariadb") for db in DATABASES}
    client = ApiClientLoop(EXTERNAL_VIP, admin_password(env, HA), external_ca(env, HA))
    try:
        with client, RowWriterLoop(**writer_account) as writer:
            custom.write_text(original + "mariadb_max_connections: 1001\n")
            assert configure(env, HA, "-t", "mariadb") > 0
        for db in DATABASES:
            assert unit_started(env, HA, db, "mariadb") > before[db], f"{db}: mariadb did not restart"
            assert on_node(env, HA, db, "mysql -N -B -e 'SELECT @@max_connections'").strip() == "1001", db
        assert len(client.records) > 20, "the client loop barely ran"
        assert client.failures == [], client.failures[:5]
        assert writer.missing() == []
    finally:
        custom.write_text(original)
        configure(env, HA, "-t", "mariadb")
        _healthy(env)


def _token_lifetime(env: dict[str, str]) -> float:
    """Seconds between a new token's issue and expiry, from Keystone through the external VIP."""
    import json
    from datetime import datetime

    from tests.lab.oms import openstack

    token = json.loads(
        openstack(env, HA, EXTERNAL_VIP)
        .identity.get("/auth/tokens", headers={"X-Subject-Token": openstack(env, HA, EXTERNAL_VIP).auth_token})
        .text
    )["token"]
    issued, expires = (datetime.fromisoformat(token[k].replace("Z", "+00:00")) for k in ("issued_at", "expires_at"))
    return (expires - issued).total_seconds()
