"""Kayobe-style: with ansible-runner mocked, each command produces exactly these runs.

The fake runner records what ansible_runner.run received and what the private data dir held at
that moment (the secrets file is removed right after a run).
"""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ansible_runner
import pytest
import yaml

from viocli.errors import BadInput, NodesUnreachable, OperationFailed
from viocli.ops import plans
from viocli.ops.ansible import parse_cli_vars, run_ansible
from viocli.ops.context import resolve_deployment
from viocli.runner.plan import PlaybookRun
from viocli.secrets.store import SecretStore
from viocli.settings import load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory"


class DataLoader(yaml.SafeLoader):
    """Reads the engine's files as Ansible does: ``!unsafe`` strings are data; anything else untagged fails."""


def _unsafe_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)


DataLoader.add_constructor("!unsafe", _unsafe_str)


def _read(path: Path) -> Any:
    text = path.read_text()
    unsafe = text.count("!unsafe ")
    data = yaml.load(text, Loader=DataLoader)  # a SafeLoader with one more tag
    strings = _strings(data)
    assert unsafe == strings, f"{path.name}: {strings - unsafe} string value(s) without the !unsafe tag"
    return data


def _strings(value: Any) -> int:
    if isinstance(value, str):
        return 1
    if isinstance(value, dict):
        return sum(_strings(v) for v in value.values())
    if isinstance(value, list):
        return sum(_strings(v) for v in value)
    return 0


class FakeRunner:
    """Stands in for ansible_runner.run: records the call, replays scripted events."""

    def __init__(self, events: list[dict[str, Any]] | None = None, status: str = "successful", rc: int = 0):
        self.calls: list[dict[str, Any]] = []
        self.events = events or [
            {"event": "playbook_on_play_start", "event_data": {"play": "all"}, "stdout": "PLAY [all]"},
            {"event": "playbook_on_task_start", "event_data": {"task": "t"}, "stdout": "TASK [t]"},
            {"event": "runner_on_ok", "event_data": {"host": "controller01", "task": "t", "res": {"changed": False}}},
            {
                "event": "playbook_on_stats",
                "event_data": {"ok": {"controller01": 1}, "changed": {}, "failures": {}, "dark": {}, "skipped": {}},
            },
        ]
        self.status, self.rc = status, rc

    def __call__(self, **kwargs: Any) -> SimpleNamespace:
        data_dir = Path(kwargs["private_data_dir"])
        secrets_file = data_dir / "inventory" / "group_vars" / "all" / "secrets.yml"
        self.calls.append(
            {
                **kwargs,
                "extravars_file": _read(data_dir / "env" / "extravars"),
                "inventory_file": _read(data_dir / "inventory" / "hosts.yml"),
                "secrets_file": _read(secrets_file),
                "secrets_mode": stat.S_IMODE(secrets_file.stat().st_mode),
                "secrets_path": secrets_file,
            }
        )
        for event in self.events:
            kwargs["event_handler"](event)
        return SimpleNamespace(status=self.status, rc=self.rc)


@pytest.fixture
def deployment(viocli_env, example):
    custom = example("ha").parent / "custom.yml"
    custom.write_text("cpu_allocation_ratio: 4.0\nntp_servers: [10.9.9.9]\nopenstack_api_workers: 6\n")
    path = example("ha")
    path.write_text(path.read_text().replace("# custom_file: custom.yml", "custom_file: custom.yml"))
    settings = load_settings()
    SecretStore(settings.deployment_dir("vio-prod")).set("vcenter_password", "VcPass-0123456789")
    return resolve_deployment(settings, None, path, None)


def _install(monkeypatch: pytest.MonkeyPatch, runner: FakeRunner) -> FakeRunner:
    monkeypatch.setattr(ansible_runner, "run", runner)
    monkeypatch.setenv("VIOCLI_PLAYBOOKS_DIR", str(Path(__file__).parent.parent / "fixtures" / "playbooks"))
    return runner


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    return _install(monkeypatch, FakeRunner())


# (description, plan factory, expected playbook, tags, skip_tags, limit, command variables, cmdline)
CASES = [
    (
        "deployment configure",
        lambda d: plans.configure(d),
        "configure.yml",
        None,
        None,
        None,
        {"viocli_action": "configure"},
        None,
    ),
    (
        "deployment configure --tags nova_api_config",
        lambda d: plans.configure(d, tags=["nova_api_config"]),
        "configure.yml",
        "nova_api_config",
        None,
        None,
        {"viocli_action": "configure"},
        None,
    ),
    (
        "deployment configure -t a,b --skip-tags c -l controller -l database01 --check --diff",
        lambda d: plans.configure(
            d, tags=["a,b"], skip_tags=["c"], limit=["controller", "database01"], check=True, diff=True
        ),
        "configure.yml",
        "a,b",
        "c",
        "controller:database01",
        {"viocli_action": "configure"},
        "--check --diff",
    ),
    (
        "deployment create (configuration step)",
        lambda d: plans.deploy(d),
        "deploy.yml",
        None,
        None,
        None,
        {"viocli_action": "deploy"},
        None,
    ),
]


@pytest.mark.parametrize(
    ("what", "factory", "playbook", "tags", "skip_tags", "limit", "command_vars", "cmdline"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_command_produces_exact_run(
    deployment, fake, what, factory, playbook, tags, skip_tags, limit, command_vars, cmdline
) -> None:
    run_ansible(load_settings(), deployment, factory(deployment), cli_vars={"cpu_allocation_ratio": 8.0})
    (call,) = fake.calls
    assert call["playbook"] == playbook
    assert call["tags"] == tags
    assert call["skip_tags"] == skip_tags
    assert call["limit"] == limit
    assert call["cmdline"] == cmdline
    # Extra vars: custom.yml < -e < the command's own viocli_* variables.
    assert call["extravars_file"] == {
        "cpu_allocation_ratio": 8.0,  # -e beats custom.yml's 4.0
        "ntp_servers": ["10.9.9.9"],
        "openstack_api_workers": 6,
        **command_vars,
    }


def test_runs_use_tuned_settings_and_checked_host_keys(deployment, fake) -> None:
    run_ansible(load_settings(), deployment, plans.configure(deployment))
    (call,) = fake.calls
    env = call["envvars"]
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert env["ANSIBLE_FORKS"] == "9"  # one per node of the HA example
    assert env["ANSIBLE_GATHERING"] == "smart" and env["ANSIBLE_CACHE_PLUGIN"] == "jsonfile"
    assert "ControlPersist" in env["ANSIBLE_SSH_ARGS"]
    # the deployment's own masters, which recover closes once a node is rebuilt
    assert env["ANSIBLE_SSH_CONTROL_PATH_DIR"] == str(load_settings().deployment_dir(deployment.name) / "cp")
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "StrictHostKeyChecking=yes" in env["ANSIBLE_SSH_ARGS"]
    assert "UserKnownHostsFile=" in env["ANSIBLE_SSH_ARGS"]
    assert call["suppress_env_files"] is True
    assert call["rotate_artifacts"] > 0
    assert call["fact_cache_type"] is None  # our cache outlives one run; runner's would not
    # Mitogen for Ansible's linear strategy, from the installed package
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()


@pytest.mark.parametrize("value", ["false", "0", "no", "off"])
def test_mitogen_off_in_viocli_conf_falls_back_to_ssh(deployment, fake, tmp_path, monkeypatch, value) -> None:
    config = tmp_path / "viocli-mitogen.conf"
    config.write_text(f"[ansible]\nmitogen = {value}\n")
    monkeypatch.setenv("VIOCLI_CONFIG", str(config))
    load_settings.cache_clear()
    assert load_settings().ansible_mitogen is False
    run_ansible(load_settings(), deployment, plans.configure(deployment))
    env = fake.calls[0]["envvars"]
    assert "ANSIBLE_STRATEGY" not in env and "ANSIBLE_STRATEGY_PLUGINS" not in env
    # the plain SSH connection keeps every other tuning
    assert env["ANSIBLE_PIPELINING"] == "True" and "ControlPersist" in env["ANSIBLE_SSH_ARGS"]


def test_mitogen_off_from_the_environment(deployment, fake, monkeypatch) -> None:
    monkeypatch.setenv("VIOCLI_ANSIBLE_MITOGEN", "0")
    load_settings.cache_clear()
    run_ansible(load_settings(), deployment, plans.configure(deployment))
    assert "ANSIBLE_STRATEGY" not in fake.calls[0]["envvars"]


def test_stock_settings_for_the_benchmark_baseline(deployment, fake, monkeypatch) -> None:
    from viocli.ops.ansible import run_target
    from viocli.runner.engine import run_playbook

    run_playbook(run_target(load_settings(), deployment), plans.configure(deployment), tuned=False)
    env = fake.calls[0]["envvars"]
    assert env["ANSIBLE_PIPELINING"] == "False" and env["ANSIBLE_FORKS"] == "5"
    assert "ANSIBLE_CACHE_PLUGIN" not in env and "ControlPersist" not in env["ANSIBLE_SSH_ARGS"]
    assert "ANSIBLE_STRATEGY" not in env  # stock: no plugin


def test_secrets_only_in_a_private_file_removed_after_the_run(deployment, fake) -> None:
    run_ansible(load_settings(), deployment, plans.configure(deployment))
    (call,) = fake.calls
    assert call["secrets_mode"] == 0o600
    assert call["secrets_file"]["vcenter_password"] == "VcPass-0123456789"
    assert "keystone_admin_password" in call["secrets_file"]
    assert not call["secrets_path"].exists()
    inventory_text = yaml.safe_dump(call["inventory_file"])
    argv_and_env = repr({k: v for k, v in call.items() if k not in ("secrets_file", "event_handler")})
    for value in call["secrets_file"].values():
        texts = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        for text in texts:
            assert text not in inventory_text
            assert text not in argv_and_env


def test_failed_hosts_exit_1_and_name_the_host_and_task(deployment, monkeypatch) -> None:
    fake = FakeRunner(
        events=[
            {"event": "playbook_on_task_start", "event_data": {"task": "Render nova.conf"}},
            {
                "event": "runner_on_failed",
                "event_data": {"host": "controller02", "task": "Render nova.conf", "res": {"msg": "template error"}},
            },
            {
                "event": "playbook_on_stats",
                "event_data": {
                    "ok": {"controller01": 3},
                    "failures": {"controller02": 1},
                    "dark": {},
                    "changed": {},
                    "skipped": {},
                },
            },
        ],
        status="failed",
        rc=2,
    )
    _install(monkeypatch, fake)
    with pytest.raises(OperationFailed) as caught:
        run_ansible(load_settings(), deployment, plans.configure(deployment))
    assert caught.value.exit_code == 1
    assert "failed on controller02" in caught.value.message
    assert any("TASK [Render nova.conf]: template error" in d for d in caught.value.details)


def test_unreachable_hosts_exit_3_and_are_told_apart_from_failed(deployment, monkeypatch) -> None:
    fake = FakeRunner(
        events=[
            {
                "event": "runner_on_unreachable",
                "event_data": {"host": "database03", "task": "Gathering Facts", "res": {"msg": "No route to host"}},
            },
            {"event": "runner_on_failed", "event_data": {"host": "database01", "task": "x", "res": {"msg": "boom"}}},
            {"event": "playbook_on_stats", "event_data": {"dark": {"database03": 1}, "failures": {"database01": 1}}},
        ],
        status="failed",
        rc=4,
    )
    _install(monkeypatch, fake)
    with pytest.raises(NodesUnreachable) as caught:
        run_ansible(load_settings(), deployment, plans.configure(deployment))
    assert caught.value.exit_code == 3
    assert "unreachable node(s): database03; failed on database01" in caught.value.message
    assert any(d.startswith("unreachable: database03: No route to host") for d in caught.value.details)


def test_limit_must_name_real_nodes_or_roles(deployment) -> None:
    with pytest.raises(BadInput, match="--limit controler01: no such node or role") as caught:
        plans.configure(deployment, limit=["controler01"])
    assert caught.value.hint == "did you mean controller01?"
    with pytest.raises(BadInput, match="--limit web: no such node or role"):
        plans.configure(deployment, limit=["web"])


def test_cli_vars_parsing_and_refusals(deployment, fake) -> None:
    assert parse_cli_vars(["a=1", "b=[1, 2]", '{"c": true}', "d=text"]) == {"a": 1, "b": [1, 2], "c": True, "d": "text"}
    for bad, message in (
        ({"internal_vip": "1.2.3.4"}, "set by the inventory"),
        ({"keystone_admin_password": "x"}, "a secret on the command line"),
        ({"viocli_action": "stop"}, "reserved for viocli"),
        ({"nova_scheduler_default_filters": ["a", "b\n[DEFAULT]"]}, r"\[1\]: contains a control character"),
    ):
        with pytest.raises(BadInput, match=message):
            run_ansible(load_settings(), deployment, plans.configure(deployment), cli_vars=bad)
    assert fake.calls == []
    with pytest.raises(BadInput):
        parse_cli_vars(["novalue"])


def test_missing_vcenter_password_is_refused_with_the_fix(viocli_env, example, fake) -> None:
    from viocli.errors import Refused

    deployment = resolve_deployment(load_settings(), None, example("tiny"), None)
    with pytest.raises(Refused) as caught:
        run_ansible(load_settings(), deployment, PlaybookRun("configure.yml"))
    assert "sudo viocli secrets set vcenter_password -d vio-tiny" in caught.value.hint
