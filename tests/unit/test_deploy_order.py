"""The shape of deploy's overlap (site.yml), checked on the shipped tree.

Every migration starts in the background once the load balancers (the internal VIP to the database)
are up and before RabbitMQ; each service that starts early has its files in tasks/files.yml (written
before its migration) and a db_sync in its descriptor, and its role waits for it (service/db_sync.yml)
before it starts its units.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SERVICES = yaml.safe_load((PLAYBOOKS / "group_vars" / "all" / "services.yml").read_text())
EARLY = SERVICES["viocli_early_migrations"]


def _plays() -> list[str]:
    return [play["name"] for play in yaml.safe_load((PLAYBOOKS / "site.yml").read_text())]


def test_migrations_start_once_the_load_balancers_are_up_and_before_rabbitmq() -> None:
    plays = _plays()
    early = plays.index("Start the database migrations")
    assert plays.index("MariaDB Galera") < plays.index("Load balancers and VIPs") < early
    assert early < plays.index("RabbitMQ") < plays.index("Keystone")


def test_every_service_with_a_database_migrates_early() -> None:
    with_db_sync = {name for name, service in SERVICES["viocli_services"].items() if "db_sync" in service}
    assert set(EARLY) == with_db_sync
    for name in EARLY:
        sync = SERVICES["viocli_services"][name]["db_sync"]
        assert sync["package"] and sync["user"] and sync["commands"], name


@pytest.mark.parametrize("role", EARLY)
def test_an_early_role_writes_its_files_first_and_waits_for_its_migration_before_its_units(role: str) -> None:
    files = yaml.safe_load((PLAYBOOKS / "roles" / role / "tasks" / "files.yml").read_text())
    assert [next(k for k in task if k.endswith("viocli_files")) for task in files] == ["viocli_files"]
    config = yaml.safe_load((PLAYBOOKS / "roles" / role / "tasks" / "config.yml").read_text())
    steps = []
    for task in config:
        imported = task.get("ansible.builtin.import_tasks") or ""
        role_import = task.get("ansible.builtin.import_role") or {}
        if imported == "files.yml":
            steps.append("files")
        elif role_import.get("tasks_from") == "db_sync":
            assert task["vars"] == {"db_sync_name": role}
            assert task.get("run_once") is True
            steps.append("db_sync")
        elif role_import.get("tasks_from") == "units":
            steps.append("units")
    assert steps[:2] == ["files", "db_sync"] and "units" in steps[2:], steps
