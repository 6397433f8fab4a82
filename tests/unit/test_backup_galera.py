"""Which Galera member takes the backup, and the table checksums that prove a restore."""

from __future__ import annotations

import pytest

from viocli.backup import galera
from viocli.errors import BadInput, Refused
from viocli.health.shell import CommandResult


def _status(
    state: str = "4", comment: str = "Synced", connections: int = 1, desync: int = 0, cluster: str = "Primary"
) -> CommandResult:
    lines = {
        "wsrep_local_state": state,
        "wsrep_local_state_comment": comment,
        "wsrep_cluster_status": cluster,
        "wsrep_cluster_state_uuid": "c2f0f574-f0b3-11f1-b6d4-bb31ea75efbf",
        "wsrep_last_committed": "2045",
        "wsrep_desync_count": str(desync),
        "wsrep_local_recv_queue": "0",
        "Threads_connected": str(connections),
        "version": "10.11.19-MariaDB",
    }
    return CommandResult(0, "".join(f"{k}\t{v}\n" for k, v in lines.items()), "")


def test_the_least_loaded_synced_member_takes_the_backup() -> None:
    states = [
        galera.judge("database01", _status(connections=37)),  # HAProxy's primary: the clients are here
        galera.judge("database02", _status(connections=2)),
        galera.judge("database03", _status(connections=1)),
    ]
    assert galera.choose_member(states).node == "database03"


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        (_status(state="2", comment="Donor/Desynced", desync=1), "Donor/Desynced"),
        (_status(desync=1), "desynced"),
        (_status(cluster="non-Primary"), "not in a Primary component (non-Primary)"),
        (CommandResult(1, "", "ERROR 2002 (HY000): Can't connect to local server"), "no SQL answer"),
    ],
)
def test_a_donor_desynced_or_cut_off_member_never_takes_it(result: CommandResult, problem: str) -> None:
    judged = galera.judge("database02", result)
    assert problem in (judged.problem or "")
    with pytest.raises(Refused) as refused:
        galera.choose_member([judged])
    assert refused.value.exit_code == 4
    assert refused.value.message.startswith("no Galera member can take the backup: database02: ")


def test_checksums_are_parsed_per_table_and_compared() -> None:
    output = "rows\tnova.instances\t3\nnova.instances\t123456\nrows\tkeystone.user\t0\nkeystone.user\tNULL\n"
    tables = galera.parse_checksums(output)
    assert tables == {"nova.instances": {"rows": 3, "checksum": 123456}, "keystone.user": {"rows": 0, "checksum": None}}
    found = {"nova.instances": {"rows": 2, "checksum": 99}, "extra.t": {"rows": 1, "checksum": 1}}
    assert galera.compare_checksums(tables, found) == [
        "extra.t: not in the backup",
        "keystone.user: missing",
        "nova.instances: rows 2 checksum 99, the manifest says rows 3 checksum 123456",
    ]


def test_the_checksum_command_skips_the_servers_own_schemas_and_fails_with_its_pipe() -> None:
    command = galera.checksum_command("/var/tmp/viocli-restore-test/mysqld.sock")
    assert command.startswith("bash -o pipefail -c ")
    import shlex

    inner = shlex.split(shlex.split(command)[-1])
    assert (
        "TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
        in inner[inner.index("-e") + 1]
    )
    assert "--socket=/var/tmp/viocli-restore-test/mysqld.sock" in command


def test_restore_runs_restore_yml_on_the_database_nodes(viocli_env, example) -> None:
    from viocli.ops import plans
    from viocli.ops.context import resolve_deployment
    from viocli.secrets.store import SecretStore
    from viocli.settings import load_settings

    settings = load_settings()
    SecretStore(settings.deployment_dir("vio-prod")).set("vcenter_password", "VcPass-0123456789")
    deployment = resolve_deployment(settings, None, example("ha"), None)
    run = plans.restore_db(deployment, "database01", "/var/lib/mysql-restore")
    assert (run.playbook, run.limit, run.tags) == ("restore.yml", None, ())
    assert run.extravars == {
        "viocli_action": "restore",
        "mariadb_restore_node": "database01",
        "mariadb_restore_dir": "/var/lib/mysql-restore",
    }
    with pytest.raises(BadInput, match="controller01 is not a database node"):
        plans.restore_db(deployment, "controller01", "/var/lib/mysql-restore")
