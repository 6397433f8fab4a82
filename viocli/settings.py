"""Where viocli keeps things on the OMS, and the operator's defaults.

Everything has a production default and can be moved, in this order of precedence:
environment variable > ``/etc/viocli/viocli.conf`` (or ``$VIOCLI_CONFIG``) > built-in default.

viocli.conf is INI, like VIO's ``/opt/vmware/vio/etc/viocli.conf``::

    [DEFAULT]
    deployment = vio-prod

    [paths]
    state_dir = /var/lib/viocli
    log_file = /var/log/viocli/viocli.log

    [ansible]
    # Mitogen for Ansible runs every playbook (the default); false falls back to Ansible's own SSH
    # connection with pipelining and a persistent master (slower, the documented fallback).
    mitogen = true
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from viocli.names import check_deployment_name

DEFAULT_CONFIG_FILE = Path("/etc/viocli/viocli.conf")
DEFAULT_STATE_DIR = Path("/var/lib/viocli")
DEFAULT_LOG_FILE = Path("/var/log/viocli/viocli.log")

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    """Resolved locations and defaults for this run of viocli."""

    config_file: Path
    state_dir: Path
    log_file: Path
    default_deployment: str | None
    # Where default_deployment came from, for error messages: the variable or the config file.
    default_deployment_source: str = "viocli.conf"
    # Playbooks run with Mitogen for Ansible (tuned runs only); off: Ansible's own SSH connection.
    ansible_mitogen: bool = True

    @property
    def db_path(self) -> Path:
        """The SQLite state store."""
        return self.state_dir / "viocli.db"

    def deployment_dir(self, name: str) -> Path:
        """Per-deployment private directory (secrets, runner data, facts, known_hosts).

        Refuses (BadInput) a name that breaks the name rule, so no caller can ever reach a path
        outside the state dir through it (``..``, ``/``, the empty name).
        """
        return self.state_dir / "deployments" / check_deployment_name(name, "deployment directory name")


@cache
def load_settings() -> Settings:
    """Read the environment and viocli.conf once per process."""
    config_file = Path(os.environ.get("VIOCLI_CONFIG", DEFAULT_CONFIG_FILE))
    parser = configparser.ConfigParser()
    try:
        parser.read(config_file)
    except configparser.Error:
        # A broken viocli.conf must not stop read-only commands; defaults apply.
        parser = configparser.ConfigParser()
    paths = parser["paths"] if parser.has_section("paths") else {}
    state_dir = os.environ.get("VIOCLI_STATE_DIR") or paths.get("state_dir") or DEFAULT_STATE_DIR
    log_file = os.environ.get("VIOCLI_LOG_FILE") or paths.get("log_file") or DEFAULT_LOG_FILE
    # An empty VIOCLI_DEPLOYMENT or "deployment =" means unset, as for the other variables.
    if os.environ.get("VIOCLI_DEPLOYMENT"):
        deployment, source = os.environ["VIOCLI_DEPLOYMENT"], "VIOCLI_DEPLOYMENT"
    else:
        deployment, source = parser.defaults().get("deployment") or None, f"[DEFAULT] deployment in {config_file}"
    mitogen_text = os.environ.get("VIOCLI_ANSIBLE_MITOGEN") or (
        parser.get("ansible", "mitogen", fallback="true") if parser.has_section("ansible") else "true"
    )
    return Settings(
        ansible_mitogen=mitogen_text.strip().lower() not in {"0", "false", "no", "off"},
        config_file=config_file,
        state_dir=Path(state_dir),
        log_file=Path(log_file),
        default_deployment=deployment,
        default_deployment_source=source,
    )


def share_dir(name: str) -> Path:
    """Locate a shipped data directory (``playbooks``, ``templates``, ``inventory``).

    An installed wheel carries them under ``viocli/_share``; a source checkout (editable install)
    has them at the top of the repository.
    """
    override = os.environ.get(f"VIOCLI_{name.upper()}_DIR")
    if override:
        return Path(override)
    installed = _PACKAGE_DIR / "_share" / name
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / name
