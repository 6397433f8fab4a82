"""The shared lab: one lab and one HA deployment per test session, used by every lab module.

Modules that bring up a lab of their own (tests/lab/test_lab.py) run before the shared lab is up:
they use the same bridge and addresses. Every scenario on the shared deployment leaves it healthy.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import pytest
import yaml

from tests.lab.oms import DATABASES, INTERNAL_VIP, oms_env, on_node_run, run_viocli, secrets_file
from tests.lab.sampler import ProcSampler, flatten

REPO = Path(__file__).resolve().parents[2]
HA = "vio-lab-ha"
TINY = "vio-lab-tiny"
SHARED = "lab_env"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests on the shared lab last (stable: file order otherwise kept)."""
    uses = [SHARED in getattr(item, "fixturenames", ()) for item in items]
    items[:] = [i for i, shared in zip(items, uses, strict=True) if not shared] + [
        i for i, shared in zip(items, uses, strict=True) if shared
    ]


@pytest.fixture(scope="session")
def lab_env(tmp_path_factory: pytest.TempPathFactory):
    """An OMS of the session's own with the lab up, and the lab inventories pointing into it.

    For a developer: VIOCLI_TEST_OMS=DIR reuses the OMS in DIR (its lab up, its inventories in DIR/inv)
    and leaves it up; the HA deployment is created there only if it does not exist yet.
    """
    reuse = os.environ.get("VIOCLI_TEST_OMS")
    if reuse:
        yield oms_env(Path(reuse)), Path(reuse) / "inv"
        return
    root = tmp_path_factory.mktemp("oms")
    env = oms_env(root)
    up = run_viocli(env, "lab", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    inventories = root / "inventory"
    inventories.mkdir()
    lab_dir = root / "state" / "lab"
    for name in ("lab-tiny.yml", "lab-ha.yml", "custom-lab.yml"):
        text = (REPO / "inventory" / name).read_text().replace("/var/lib/viocli/lab/", f"{lab_dir}/")
        (inventories / name).write_text(text)
    # tiny gets a custom.yml of its own: its test edits it
    tiny = inventories / "lab-tiny.yml"
    tiny.write_text(tiny.read_text().replace("custom_file: custom-lab.yml", "custom_file: custom-tiny.yml"))
    (inventories / "custom-tiny.yml").write_text((inventories / "custom-lab.yml").read_text())
    yield env, inventories
    down = run_viocli(env, "lab", "down")
    assert down.returncode == 0, down.stderr


def create(env: dict[str, str], inventory: Path) -> str:
    """``deployment create`` through the CLI; its output."""
    result = run_viocli(env, "deployment", "create", "-i", str(inventory), "--yes", timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def configure(env: dict[str, str], deployment: str, *options: str) -> int:
    """``deployment configure`` (with ``options``, e.g. ``-t keystone``) through the CLI; how many things it changed."""
    result = run_viocli(env, "deployment", "configure", "-d", deployment, *options, timeout=3600)
    assert result.returncode == 0, result.stdout + result.stderr
    changed = re.search(r"configure changed (\d+) things", result.stdout)
    assert changed, result.stdout
    return int(changed.group(1))


def secrets_sampler(env: dict[str, str], deployment: str) -> ProcSampler:
    """A /proc sampler for every secret of ``deployment``, and for any new value it gets while sampling.

    Every day-2 command's lab test runs its command inside one and asserts ``hits == []``.
    """
    store = secrets_file(env, deployment)
    return ProcSampler(flatten(yaml.safe_load(store.read_text())), store=store)


@pytest.fixture(scope="session")
def ha(lab_env):
    """The HA deployment, created once per session: (env, inventories dir, create's output)."""
    env, inventories = lab_env
    if (Path(env["VIOCLI_STATE_DIR"]) / "deployments" / HA / "known_hosts").exists() and os.environ.get(
        "VIOCLI_TEST_OMS"
    ):
        return env, inventories, ""
    return env, inventories, create(env, inventories / "lab-ha.yml")


@pytest.fixture(scope="session")
def writer_account(ha):
    """A database and user of the test's own, for the row-writing client (password over stdin).

    With the deployment's internal_tls on, the account requires TLS, as the services' accounts do, and
    the client verifies the database nodes against the deployment's CA.
    """
    env, inventories, _ = ha
    internal_tls = bool(yaml.safe_load((inventories / "lab-ha.yml").read_text()).get("internal_tls"))
    password = secrets.token_urlsafe(16)
    sql = (
        "CREATE DATABASE IF NOT EXISTS viocli_probe;\n"
        f"CREATE OR REPLACE USER 'probe'@'%' IDENTIFIED BY '{password}'{' REQUIRE SSL' if internal_tls else ''};\n"
        "GRANT ALL ON viocli_probe.* TO 'probe'@'%';\n"
    )
    done = on_node_run(env, HA, DATABASES[0], "mysql --batch", stdin=sql)
    assert done.returncode == 0, done.stderr
    ca_file = Path(env["VIOCLI_STATE_DIR"]) / "deployments" / HA / "tls" / "ca.pem" if internal_tls else None
    return {"host": INTERNAL_VIP, "user": "probe", "password": password, "database": "viocli_probe", "ca_file": ca_file}
