"""The run engine with real ansible-runner and ansible-playbook, on localhost.

These check what an operator would: which value a variable really takes, that a secret printed
by a careless task appears nowhere viocli writes, and the exit codes of real failures.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from viocli.errors import NodesUnreachable, OperationFailed
from viocli.ops.ansible import run_ansible
from viocli.redact import MASK
from viocli.runner.engine import read_events, run_playbook
from viocli.runner.plan import PlaybookRun
from viocli.runner.progress import RunProgress
from viocli.settings import load_settings

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engine"


@pytest.fixture
def local_target(local_tiny):
    """A real tiny deployment whose single node is this machine (ansible_connection=local)."""
    return local_tiny(FIXTURES, "ntp_servers: [10.9.9.9]\nmariadb_innodb_buffer_pool_mb: 512\n")


def _quiet() -> RunProgress:
    return RunProgress("test", stream=io.StringIO(), live=False)


def test_variable_precedence_role_mode_inventory_custom_cli(local_target, tmp_path: Path) -> None:
    _, make = local_target
    out = tmp_path / "probe.json"
    run = PlaybookRun("precedence.yml", extravars={"viocli_probe_output": str(out)})
    result = run_playbook(make(), run, cli_vars={"mariadb_innodb_buffer_pool_mb": 1024}, progress=_quiet())
    assert result.status == "successful"
    assert json.loads(out.read_text()) == {
        "probe_role_only": "role",  # role defaults only
        "openstack_rpc_workers": 1,  # mode default (tiny) beats the role default
        "openstack_api_workers": 3,  # inventory beats the mode default (1)
        "ntp_servers": ["10.9.9.9"],  # custom.yml beats the inventory ([10.40.0.2])
        "mariadb_innodb_buffer_pool_mb": 1024,  # -e beats custom.yml (512)
    }


def test_secrets_never_reach_console_log_or_artifacts(local_target, viocli_env, capsys, monkeypatch) -> None:
    from viocli.logsetup import setup_logging

    # A credential in the operator's shell must not be copied into the artifacts either.
    monkeypatch.setenv("OS_PASSWORD", "shell-held-credential-42")
    deployment, make = local_target
    log_file = setup_logging(load_settings().log_file)
    target = make()
    secrets = [target.secrets["keystone_admin_password"], target.secrets["nova_db_password"]]
    stream = io.StringIO()
    result = run_playbook(target, PlaybookRun("leak.yml"), verbosity=2, progress=RunProgress("t", stream=stream))
    assert result.status == "successful"
    written = [stream.getvalue(), *capsys.readouterr(), log_file.read_text()]
    for path in (load_settings().deployment_dir(deployment.name) / "runner").rglob("*"):
        if path.is_file():
            written.append(path.read_text(errors="replace"))
    for secret in [*secrets, "shell-held-credential-42"]:
        assert not any(secret in text for text in written)
    assert f"admin password is {MASK}" in log_file.read_text()
    events = read_events(result.artifact_dir)
    assert any(f"db={MASK}" in json.dumps(e) for e in events)
    assert (result.artifact_dir / "stdout").exists()


def test_failed_task_exits_1_naming_host_and_task(local_target) -> None:
    _, make = local_target
    target = make()
    with pytest.raises(OperationFailed) as caught:
        run_playbook(target, PlaybookRun("fail.yml"), progress=_quiet())
    error = caught.value
    assert error.exit_code == 1
    assert error.message == "fail.yml on vio-tiny failed on controller01"
    assert any("TASK [Render nova.conf]: template error in nova.conf" in d for d in error.details)
    assert not any(target.secrets["nova_db_password"] in d for d in error.details)


def test_unreachable_node_exits_3(local_target) -> None:
    _, make = local_target
    target = make()
    target.inventory["all"]["hosts"]["controller01"].update(
        ansible_connection="ssh", ansible_host="127.0.0.1", ansible_port=1
    )
    with pytest.raises(NodesUnreachable) as caught:
        run_playbook(target, PlaybookRun("ping.yml"), progress=_quiet())
    assert caught.value.exit_code == 3
    assert "unreachable node(s): controller01" in caught.value.message


def test_progress_reports_plays_failures_and_recap(local_target) -> None:
    _, make = local_target
    stream = io.StringIO()
    with pytest.raises(OperationFailed):
        run_playbook(make(), PlaybookRun("fail.yml"), progress=RunProgress("vio-tiny", stream=stream, live=False))
    text = stream.getvalue()
    assert "PLAY [A play that fails on one task]" in text
    assert "FAILED: controller01: TASK [Render nova.conf]" in text
    assert "controller01  ok=1 changed=0 failed=1 unreachable=0" in text


def test_artifacts_are_rotated(local_target, monkeypatch) -> None:
    from viocli.runner import engine

    monkeypatch.setattr(engine, "ROTATE_ARTIFACTS", 2)
    _, make = local_target
    for _ in range(3):
        run_playbook(make(), PlaybookRun("ping.yml"), progress=_quiet())
    artifacts = list((make().work_dir / "runner" / "artifacts").iterdir())
    assert len(artifacts) == 2


def test_run_ansible_with_real_runner_through_the_ops_layer(local_target, monkeypatch) -> None:
    deployment, make = local_target
    import viocli.ops.ansible as ops_ansible

    monkeypatch.setattr(ops_ansible, "run_target", lambda settings, d, extra_secrets=None: make())
    result = run_ansible(load_settings(), deployment, PlaybookRun("ping.yml"))
    assert result.hosts("ok") == ["controller01"]
    assert result.changed == 0


# Jinja in data, three ways: an expression that runs a command, a statement that does, and an open comment.
HOSTILE = (
    "{{{{ lookup('pipe', 'touch {marker}') }}}}",
    "{{% if lookup('pipe', 'touch {marker}') %}}x{{% endif %}}",
    "{{# {marker} and {{{{ 7*7 }}}}",
)
# How Ansible reaches the test's own host; not values an operator sets.
CONNECTION_VARS = {"ansible_connection", "ansible_python_interpreter"}


def _poison(value, where: str, marker: Path, counter: list[int]):
    """Replace every string in ``value`` by a hostile one that still names where it sits."""
    if isinstance(value, str):
        counter[0] += 1
        return f"{where}:" + HOSTILE[counter[0] % len(HOSTILE)].format(marker=marker)
    if isinstance(value, dict):
        return {key: _poison(item, f"{where}.{key}", marker, counter) for key, item in value.items()}
    if isinstance(value, list):
        return [_poison(item, f"{where}[{index}]", marker, counter) for index, item in enumerate(value)]
    return value


def test_inventory_secret_custom_and_cli_values_are_never_templated(local_target, tmp_path: Path) -> None:
    """Jinja in any string field or secret arrives literally and runs nothing (it used to run as root)."""
    _, make = local_target
    marker = tmp_path / "MARKER"
    counter = [0]
    target = make()
    group = target.inventory["all"]["vars"]
    host = target.inventory["all"]["hosts"]["controller01"]
    for variables in (group, host):
        for name in [n for n in variables if n not in CONNECTION_VARS]:
            variables[name] = _poison(variables[name], name, marker, counter)
    target.secrets = {name: _poison(value, name, marker, counter) for name, value in target.secrets.items()}
    target.custom_vars = {"ntp_servers": _poison(["a", "b"], "custom", marker, counter)}
    cli_vars = {"mariadb_innodb_buffer_pool_mb": _poison("x", "cli", marker, counter)}
    expected = {
        **{n: v for n, v in group.items() if n not in CONNECTION_VARS},
        **{n: v for n, v in host.items() if n not in CONNECTION_VARS},
        **target.secrets,
        **target.custom_vars,
        **cli_vars,
    }
    assert counter[0] > 60, "the corpus covers every string field and secret"
    out = tmp_path / "values.json"
    run = PlaybookRun(
        "literal.yml", extravars={"viocli_probe_output": str(out), "viocli_probe_names": sorted(expected)}
    )
    result = run_playbook(target, run, cli_vars=cli_vars, progress=_quiet())

    assert result.status == "successful"
    assert not marker.exists(), "a value from the inventory or the secrets ran as Jinja"
    assert json.loads(out.read_text()) == expected
    rendered = Path(f"{out}.rendered").read_text()
    assert rendered == (
        f"region={expected['openstack_region']}\nadmin={expected['keystone_admin_password']}\n"
        f"ntp={','.join(expected['ntp_servers'])}\n"
    )
    assert Path(f"{out}.command").read_text() == expected["openstack_region"]


def test_a_hostile_cluster_name_reaches_the_nova_compute_unit_only_as_its_slug(local_target, tmp_path: Path) -> None:
    """Even a name validation would refuse: the unit runs as root at boot, so only the slug is in it."""
    _, make = local_target
    name = "a$(touch /tmp/x)`touch /tmp/x`\"; touch /tmp/x; '\nExecStartPre=/bin/sh -c id"
    target = make()
    target.inventory["all"]["vars"]["compute_clusters"] = [{"name": name, "datastore_regex": None}]
    target.inventory["all"]["hosts"]["controller01"]["compute_clusters_served"] = [name]
    unit = tmp_path / "nova-compute.service"
    role = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "nova_compute"
    run = PlaybookRun(
        "nova_compute_unit.yml", extravars={"viocli_probe_output": str(unit), "viocli_role_dir": str(role)}
    )
    assert run_playbook(target, run, progress=_quiet()).status == "successful"

    slug = "a-touch-tmp-x-touch-tmp-x-touch-tmp-x-execstartpre-bin-sh-c-id"
    lines = [line for line in unit.read_text().splitlines() if line and not line.startswith("#")]
    assert [line for line in lines if line.startswith("Exec")] == [
        "ExecStart=/usr/bin/nova-compute --config-file=/etc/nova/nova.conf"
        f" --config-file=/etc/nova/nova-compute-{slug}.conf --log-file=/var/log/nova/nova-compute-{slug}.log"
    ]
    assert not any(char in line for line in lines for char in "$`;'\"")


def _run_sleep(target) -> None:
    run_playbook(target, PlaybookRun("sleep.yml"), progress=_quiet())


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_viocli_takes_its_playbook_with_it(local_target) -> None:
    """viocli killed with SIGKILL mid-run: its ansible-playbook (pexpect's child, which ignores SIGHUP
    in a session of its own) must not go on changing the deployment once the lock's holder is gone."""
    _, make = local_target
    viocli = multiprocessing.get_context("fork").Process(target=_run_sleep, args=(make(),))
    viocli.start()
    deadline = time.monotonic() + 60
    while not (playbooks := _children(viocli.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert playbooks, "no ansible-playbook started"
    time.sleep(3)  # well inside the play: its task runs `sleep 120`
    os.kill(viocli.pid, signal.SIGKILL)
    viocli.join()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in playbooks) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in playbooks), "ansible-playbook outlived the viocli that ran it"
