"""Run a planned playbook against a deployment: secrets, variables from the command line, target."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from viocli.errors import BadInput, Refused
from viocli.inventory.load import multiline_values
from viocli.inventory.problems import dotted
from viocli.inventory.render import RESERVED_PREFIX, ansible_inventory, known_variables, locked_variables
from viocli.ops.context import Deployment
from viocli.ops.internal_tls import internal_tls_vars
from viocli.ops.tls import external_pem
from viocli.runner.engine import RunResult, RunTarget, run_playbook
from viocli.runner.plan import PlaybookRun
from viocli.secrets.catalog import secret_names
from viocli.secrets.store import SecretStore
from viocli.settings import Settings, share_dir


def parse_cli_vars(values: Sequence[str]) -> dict[str, Any]:
    """``-e key=value`` (value read as YAML), ``-e '{"k": 1}'`` or ``-e @file.yml``; later wins."""
    merged: dict[str, Any] = {}
    for value in values:
        text = value.strip()
        if text.startswith("@"):
            path = Path(text[1:])
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as error:
                raise BadInput(f"-e {text}: cannot read {path}: {error}") from None
        elif text.startswith("{"):
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise BadInput(f"-e: not a valid mapping: {error}") from None
        elif "=" in text:
            key, _, raw = text.partition("=")
            try:
                data = {key.strip(): yaml.safe_load(raw) if raw else ""}
            except yaml.YAMLError:
                data = {key.strip(): raw}
        else:
            raise BadInput(f"-e {text!r}: expected KEY=VALUE, a YAML mapping or @FILE")
        if not isinstance(data, dict):
            raise BadInput(f"-e {text!r}: expected KEY=VALUE, a YAML mapping or @FILE")
        merged.update(data)
    return merged


def check_cli_vars(deployment: Deployment, cli_vars: Mapping[str, Any]) -> None:
    """Refuse ``-e`` variables that would bypass the inventory, the secrets store or viocli itself."""
    model = deployment.loaded.model
    locked = locked_variables(model)
    secrets = set(secret_names())
    for key in cli_vars:
        if key.startswith(RESERVED_PREFIX):
            raise BadInput(f"-e {key}: variables starting with {RESERVED_PREFIX!r} are reserved for viocli")
        if key in locked:
            raise BadInput(f"-e {key}: set by the inventory; change it in {deployment.loaded.path}")
        if key in secrets:
            raise BadInput(
                f"-e {key}: a secret on the command line would be visible to every user (ps, shell history)",
                hint=f"store it with: sudo viocli secrets set {key}",
            )
    for where, what in multiline_values(dict(cli_vars)):
        raise BadInput(
            f"-e {dotted(where)}: contains a control character ({what}); a value must be a single line of text"
        )
    known = known_variables(model)
    for key in (k for k in cli_vars if k not in known):
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.85)
        if close:
            raise BadInput(f"-e {key}: no role uses this variable; did you mean {close[0]}?")


def load_secrets(settings: Settings, deployment: Deployment) -> dict[str, Any]:
    """The deployment's secrets as Ansible variables, generating missing ones (first use)."""
    store = SecretStore(settings.deployment_dir(deployment.name))
    values = store.ensure_generated()
    vcenter_name = deployment.loaded.model.vcenter.password_secret
    if vcenter_name not in values:
        raise Refused(
            f"the vCenter password ({vcenter_name}) is not in the secrets store of {deployment.name}",
            hint=f"store it once with: sudo viocli secrets set {vcenter_name} -d {deployment.name}",
        )
    variables = {name: value for name, value in values.items() if name in secret_names()}
    variables["vcenter_password"] = values[vcenter_name]
    return variables


def run_target(settings: Settings, deployment: Deployment, extra_secrets: Mapping[str, Any] | None = None) -> RunTarget:
    """Everything the engine needs to run a playbook against ``deployment``; ``extra_secrets`` win."""
    work_dir = settings.deployment_dir(deployment.name)
    ssh_key = settings.state_dir / "ssh" / "id_ed25519"
    model = deployment.loaded.model
    inventory = ansible_inventory(model, deployment.nodes, mask_secrets=False)
    public_key = ssh_key.with_name("id_ed25519.pub")
    if public_key.exists():
        # The common role keeps this key authorized on every node (it is how viocli gets in).
        inventory["all"]["vars"]["oms_ssh_public_key"] = public_key.read_text(encoding="ascii").strip()
    return RunTarget(
        name=deployment.name,
        work_dir=work_dir,
        playbook_dir=share_dir("playbooks"),
        inventory=inventory,
        secrets={
            **load_secrets(settings, deployment),
            "haproxy_external_pem": external_pem(model, work_dir),
            **internal_tls_vars(model, deployment.nodes, work_dir),
            **(extra_secrets or {}),
        },
        custom_vars=dict(deployment.loaded.custom_vars),
        node_count=len(deployment.nodes),
        ssh_key=ssh_key if ssh_key.exists() else None,
        mitogen=settings.ansible_mitogen,
    )


def run_ansible(
    settings: Settings,
    deployment: Deployment,
    run: PlaybookRun,
    *,
    cli_vars: Mapping[str, Any] | None = None,
    verbosity: int = 0,
    tuned: bool = True,
    extra_secrets: Mapping[str, Any] | None = None,
) -> RunResult:
    """Check the operator's ``-e`` and run ``run`` against the deployment (``extra_secrets``: this run only)."""
    cli_vars = dict(cli_vars or {})
    check_cli_vars(deployment, cli_vars)
    return run_playbook(
        run_target(settings, deployment, extra_secrets), run, cli_vars=cli_vars, verbosity=verbosity, tuned=tuned
    )
