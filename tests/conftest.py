"""Shared fixtures: every test runs viocli against its own state dir, log file and config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from viocli.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "inventory"


@pytest.fixture
def viocli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point viocli's state dir, log file and config into ``tmp_path``; returns that root."""
    root = tmp_path / "oms"
    monkeypatch.setenv("VIOCLI_STATE_DIR", str(root / "state"))
    monkeypatch.setenv("VIOCLI_LOG_FILE", str(root / "log" / "viocli.log"))
    monkeypatch.setenv("VIOCLI_CONFIG", str(root / "etc" / "viocli.conf"))
    monkeypatch.delenv("VIOCLI_DEPLOYMENT", raising=False)
    load_settings.cache_clear()
    yield root
    load_settings.cache_clear()


@pytest.fixture
def example(tmp_path: Path):
    """Copy a shipped example inventory into tmp_path (so a test may edit it) and return its path."""

    def copy(name: str) -> Path:
        target = tmp_path / "inv" / f"{name}.yml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / f"{name}.yml", target)
        return target

    return copy


@pytest.fixture
def local_tiny(viocli_env, example, monkeypatch: pytest.MonkeyPatch):
    """A real tiny deployment whose single node is this machine (``ansible_connection=local``).

    Call it with the playbook directory to run from and the text of custom.yml; it returns the
    deployment and a function that makes a fresh run target.
    """
    import sys

    import yaml

    from viocli.ops.ansible import run_target
    from viocli.ops.context import resolve_deployment
    from viocli.secrets.store import SecretStore

    def make_deployment(playbook_dir: Path, custom: str):
        monkeypatch.setenv("VIOCLI_PLAYBOOKS_DIR", str(playbook_dir))
        path = example("tiny")
        (path.parent / "custom.yml").write_text(custom)
        data = yaml.safe_load(path.read_text())
        data["custom_file"] = "custom.yml"
        data["openstack"]["api_workers"] = 3
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        settings = load_settings()
        SecretStore(settings.deployment_dir("vio-tiny")).set("vcenter_password", "VcPass-Real-0123")
        deployment = resolve_deployment(settings, None, path, None)

        def make():
            target = run_target(settings, deployment)
            host = target.inventory["all"]["hosts"]["controller01"]
            host.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
            return target

        return deployment, make

    return make_deployment


@pytest.fixture(autouse=True)
def _fresh_logging_and_redactor(monkeypatch: pytest.MonkeyPatch):
    """Each test starts with no log file open and an empty redactor."""
    import logging

    from viocli import logsetup
    from viocli.redact import REDACTOR

    REDACTOR.clear()
    logger = logging.getLogger(logsetup.LOGGER_NAME)
    saved = list(logger.handlers)
    monkeypatch.setattr(logsetup, "_configured", False)
    monkeypatch.setattr(logsetup, "_active_log_file", None)
    yield
    for handler in logger.handlers:
        if handler not in saved:
            handler.close()
    logger.handlers = saved
    REDACTOR.clear()
