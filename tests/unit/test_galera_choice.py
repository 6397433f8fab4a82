"""How `viocli deployment start` brings Galera back (playbooks/filter_plugins/viocli_galera.py), in every
case of seed 003 section 9.2.2: a running Primary component is never bootstrapped over; a clean stop
bootstraps from the node marked safe_to_bootstrap; a crash from the highest recovered seqno (-1 is
unknown, the lowest; ties go to the first database node), refusing members of different histories.
And the order of a rolling restart (`viocli services restart`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from tests.playbook_code import load

PLUGIN = Path(__file__).resolve().parents[2] / "playbooks" / "filter_plugins" / "viocli_galera.py"
ORDER = ["database01", "database02", "database03"]
UUID = "5b821365-fafb-11e4-a3d3-471472ccc7b3"
OTHER_UUID = "7a110000-0000-11e4-a3d3-471472ccc7b3"


@pytest.fixture(scope="module")
def galera():
    return load(PLUGIN)


def grastate(seqno: int = -1, safe: int = 0, uuid: str = UUID) -> str:
    return f"# GALERA saved state\nversion: 2.1\nuuid:    {uuid}\nseqno:   {seqno}\nsafe_to_bootstrap: {safe}\n"


def stopped(seqno: int = -1, safe: int = 0, uuid: str = UUID, unit: str = "inactive") -> dict:
    """A member whose mariadb does not run, as tasks/gather_node.yml records it."""
    return {"unit": unit, "sql_rc": None, "sql": "", "sql_error": "", "grastate": grastate(seqno, safe, uuid)}


def running(status: str = "Primary", state: str = "Synced", size: int = 3) -> dict:
    """A member whose mariadb runs and answers its wsrep status query."""
    sql = (
        f"wsrep_cluster_size\t{size}\nwsrep_cluster_state_uuid\t{UUID}\n"
        f"wsrep_cluster_status\t{status}\nwsrep_local_state_comment\t{state}\n"
    )
    return {"unit": "active", "sql_rc": 0, "sql": sql, "sql_error": "", "grastate": grastate(-1, 0)}


def recovered(member: dict, seqno: int, uuid: str = UUID) -> dict:
    """The member after galera_recovery (the lines of its stderr and stdout, as recover.yml passes them)."""
    lines = [f"WSREP: Recovered position {uuid}:{seqno}", f"--wsrep_start_position={uuid}:{seqno}", ""]
    return {**member, "recovery_rc": 0, "recovery": lines}


def crashed(*seqnos: int, uuids: tuple[str, ...] = (UUID, UUID, UUID)) -> dict:
    """Every member down after a crash (grastate seqno -1, not safe), with its recovered position."""
    return {host: recovered(stopped(), seqno, uuid) for host, seqno, uuid in zip(ORDER, seqnos, uuids, strict=True)}


# --- the parsers -----------------------------------------------------------------------------------


def test_grastate_is_read_and_a_missing_file_is_an_empty_member(galera) -> None:
    assert galera.galera_grastate(grastate(1234, 1)) == {"uuid": UUID, "seqno": 1234, "safe_to_bootstrap": True}
    assert galera.galera_grastate(grastate(-1, 0)) == {"uuid": UUID, "seqno": -1, "safe_to_bootstrap": False}
    assert galera.galera_grastate(None) == {"uuid": None, "seqno": -1, "safe_to_bootstrap": False}
    zero = grastate(-1, 0, "00000000-0000-0000-0000-000000000000")
    assert galera.galera_grastate(zero)["uuid"] is None


def test_the_wsrep_status_is_read(galera) -> None:
    status = galera.galera_wsrep_status(running("non-Primary", "Initialized", 1)["sql"])
    assert status == {
        "cluster_status": "non-Primary",
        "local_state": "Initialized",
        "cluster_size": 1,
        "state_uuid": UUID,
    }


def test_the_recovered_position_is_the_last_of_the_whole_log(galera) -> None:
    # kolla LP#1821173: a long log holds earlier positions; the last line wins, wherever it is.
    log = "\n".join(
        [f"2026-01-01 10:00:00 0 [Note] WSREP: Recovered position: {UUID}:17"]
        + ["2026-01-01 10:00:00 0 [Note] InnoDB: filler"] * 500
        + [f"2026-01-01 10:00:01 0 [Note] WSREP: Recovered position: {UUID}:38719,0-1-38719"]
    )
    assert galera.galera_recovered_position(log) == {"uuid": UUID, "seqno": 38719}
    assert galera.galera_recovered_position(f"--wsrep_start_position={UUID}:-1") == {"uuid": UUID, "seqno": -1}
    assert galera.galera_recovered_position(["WSREP: Position recovery skipped.", ""]) is None


def test_the_first_error_prefers_the_marked_error_line(galera) -> None:
    output = (
        "WSREP: Failed to start mysqld for wsrep recovery: '2026-01-01 10:00:00 0 [Note] Starting\n"
        "2026-01-01 10:00:00 0 [ERROR] InnoDB: Corruption of an index tree'"
    )
    assert galera.galera_first_error(output) == "[ERROR] InnoDB: Corruption of an index tree"
    assert galera.galera_first_error("2026-01-01 10:00:00 0 [Warning] something odd") == "[Warning] something odd"
    assert galera.galera_first_error("") == ""


# --- case 1: a Primary component runs ----------------------------------------------------------------


def test_a_running_primary_component_is_never_bootstrapped_over(galera) -> None:
    states = {"database01": running(size=2), "database02": running(size=2), "database03": stopped(seqno=900, safe=1)}
    choice = galera.galera_bootstrap_choice(states, ORDER)
    assert choice["action"] == "join"
    assert choice["node"] == "database01"
    assert choice["join"] == ["database03"]  # although it says safe_to_bootstrap: 1
    assert choice["stop"] == []
    assert choice["members"] == ORDER
    assert "not bootstrapping over it" in choice["reason"]


def test_every_member_synced_needs_nothing(galera) -> None:
    choice = galera.galera_bootstrap_choice({host: running() for host in ORDER}, ORDER)
    assert (choice["action"], choice["join"], choice["stop"]) == ("join", [], [])
    assert choice["reason"].endswith("every member is in it")


def test_non_primary_runners_are_stopped_then_joined(galera) -> None:
    states = {
        "database01": stopped(),
        "database02": running(size=1),
        "database03": running("non-Primary", "Initialized", 1),
    }
    choice = galera.galera_bootstrap_choice(states, ORDER)
    assert (choice["action"], choice["node"]) == ("join", "database02")
    assert choice["stop"] == ["database03"]
    assert choice["join"] == ["database01", "database03"]  # one at a time, in inventory order
    assert "stopping database03 (outside it) first" in choice["reason"]


def test_a_member_still_activating_joins_a_running_component(galera) -> None:
    states = {"database01": running(size=2), "database02": running(size=2), "database03": stopped(unit="activating")}
    assert galera.galera_bootstrap_choice(states, ORDER)["join"] == ["database03"]


def test_separate_primary_components_are_refused(galera) -> None:
    states = {"database01": running(size=1), "database02": stopped(), "database03": running(size=1)}
    with pytest.raises(AnsibleFilterError, match=r"database01 \(size 1\), database03 \(size 1\) run in separate"):
        galera.galera_bootstrap_choice(states, ORDER)


def test_a_limit_joins_only_its_own_members(galera) -> None:
    states = {"database01": running(size=2), "database02": running(size=2), "database03": stopped()}
    choice = galera.galera_bootstrap_choice(states, ORDER, ["database03"])
    assert choice["join"] == ["database03"]
    assert choice["members"] == ORDER
    choice = galera.galera_bootstrap_choice(states, ORDER, ["database02"])
    assert choice["join"] == [] and choice["members"] == ["database01", "database02"]


def test_the_named_bootstrap_node_is_ignored_over_a_running_component(galera) -> None:
    states = {"database01": running(size=2), "database02": running(size=2), "database03": stopped()}
    choice = galera.galera_bootstrap_choice(states, ORDER, None, "database03")
    assert choice["action"] == "join"
    assert "mariadb_bootstrap_node database03 not used" in choice["reason"]


# --- no Primary component, but members run outside one --------------------------------------------------


def test_members_running_outside_any_primary_are_stopped_before_choosing(galera) -> None:
    states = {"database01": stopped(), "database02": stopped(), "database03": running("non-Primary", "Initialized", 1)}
    choice = galera.galera_bootstrap_choice(states, ORDER)
    assert (choice["action"], choice["stop"]) == ("stop", ["database03"])
    assert choice["node"] is None


def test_a_member_that_runs_but_does_not_answer_is_refused(galera) -> None:
    mute = {**running(), "sql_rc": 1, "sql": "", "sql_error": "ERROR 2013 (HY000): Lost connection to server"}
    states = {"database01": stopped(), "database02": mute, "database03": stopped()}
    with pytest.raises(AnsibleFilterError, match=r"database02 but does not answer SQL .*ERROR 2013"):
        galera.galera_bootstrap_choice(states, ORDER)


def test_a_member_still_activating_without_a_primary_is_refused(galera) -> None:
    states = {"database01": stopped(seqno=5, safe=1), "database02": stopped(unit="activating"), "database03": stopped()}
    with pytest.raises(AnsibleFilterError, match="database02 is still activating"):
        galera.galera_bootstrap_choice(states, ORDER)


def test_bootstrapping_needs_every_database_node_in_the_run(galera) -> None:
    states = {host: stopped(seqno=5, safe=int(host == "database01")) for host in ORDER}
    with pytest.raises(AnsibleFilterError, match="takes every database node"):
        galera.galera_bootstrap_choice(states, ORDER, ["database02"])


# --- case 2: a clean stop ------------------------------------------------------------------------------


def test_a_clean_stop_bootstraps_from_the_member_marked_safe(galera) -> None:
    states = {"database01": stopped(1000, 0), "database02": stopped(1001, 1), "database03": stopped(999, 0)}
    choice = galera.galera_bootstrap_choice(states, ORDER)
    assert (choice["action"], choice["node"]) == ("bootstrap", "database02")
    assert choice["join"] == ["database01", "database03"]
    assert choice["reason"] == (
        "bootstrapping from database02 (safe_to_bootstrap: 1: it stopped last, cleanly; seqno 1001)"
    )


def test_a_clean_stop_with_a_member_that_does_not_answer_still_bootstraps(galera) -> None:
    states = {"database01": stopped(1000, 1), "database02": stopped(999, 0)}
    choice = galera.galera_bootstrap_choice(states, ORDER)
    assert (choice["action"], choice["node"], choice["join"]) == ("bootstrap", "database01", ["database02"])
    assert "database03: did not answer" in choice["found"]


def test_a_clean_stop_refuses_members_of_another_history(galera) -> None:
    states = {"database01": stopped(1000, 1), "database02": stopped(999, 0), "database03": stopped(5, 0, OTHER_UUID)}
    with pytest.raises(AnsibleFilterError, match=rf"database03 has {OTHER_UUID}"):
        galera.galera_bootstrap_choice(states, ORDER)


# --- case 3: a crash -------------------------------------------------------------------------------------


def test_a_crash_first_asks_for_every_members_position(galera) -> None:
    choice = galera.galera_bootstrap_choice({host: stopped() for host in ORDER}, ORDER)
    assert choice["action"] == "recover"
    assert "none is marked safe_to_bootstrap" in choice["reason"]


def test_a_crash_bootstraps_from_the_highest_seqno(galera) -> None:
    choice = galera.galera_bootstrap_choice(crashed(100, 1234, 1200), ORDER)
    assert (choice["action"], choice["node"]) == ("bootstrap", "database02")
    assert choice["reason"] == "bootstrapping from database02 (highest seqno 1234)"
    assert choice["join"] == ["database01", "database03"]
    assert "database02: inactive, grastate seqno -1, safe_to_bootstrap 0, recovered seqno 1234" in choice["found"]


def test_a_tie_goes_to_the_first_database_node(galera) -> None:
    choice = galera.galera_bootstrap_choice(crashed(1200, 1234, 1234), ORDER)
    assert choice["node"] == "database02"
    assert choice["reason"] == (
        "bootstrapping from database02 (highest seqno 1234, tied with database03: the first in the inventory)"
    )
    assert galera.galera_bootstrap_choice(crashed(7, 7, 7), ORDER)["node"] == "database01"


def test_seqno_minus_one_is_unknown_and_the_lowest(galera) -> None:
    assert galera.galera_bootstrap_choice(crashed(-1, 5, -1), ORDER)["node"] == "database02"
    choice = galera.galera_bootstrap_choice(crashed(-1, -1, -1), ORDER)
    assert choice["node"] == "database01"
    assert "every member reports seqno -1" in choice["reason"]


def test_an_empty_data_directory_is_never_chosen(galera) -> None:
    zero = "00000000-0000-0000-0000-000000000000"
    states = crashed(-1, -1, -1, uuids=(zero, UUID, UUID))
    states["database01"]["grastate"] = None  # a data directory made anew: no grastate.dat yet
    assert galera.galera_bootstrap_choice(states, ORDER)["node"] == "database02"


def test_different_cluster_uuids_are_refused_naming_the_members(galera) -> None:
    states = crashed(5, 6, 7, uuids=(UUID, UUID, OTHER_UUID))
    with pytest.raises(AnsibleFilterError) as refused:
        galera.galera_bootstrap_choice(states, ORDER)
    assert f"database01 and database02 have {UUID}; database03 has {OTHER_UUID}" in str(refused.value)


def test_a_failed_recovery_is_refused_with_its_error(galera) -> None:
    states = crashed(5, 6, 7)
    states["database03"] = {
        **stopped(),
        "recovery_rc": 1,
        "recovery": ["WSREP: Failed to start mysqld for wsrep recovery: '2026-01-01 0 [ERROR] InnoDB: Corrupt'", ""],
    }
    with pytest.raises(AnsibleFilterError, match=r"failed on database03: \[ERROR\] InnoDB: Corrupt"):
        galera.galera_bootstrap_choice(states, ORDER)


def test_a_crash_with_a_member_that_does_not_answer_is_refused(galera) -> None:
    states = {"database01": stopped(), "database02": stopped()}
    with pytest.raises(AnsibleFilterError, match="database03 did not answer"):
        galera.galera_bootstrap_choice(states, ORDER)


def test_the_named_bootstrap_node_wins_without_a_running_component(galera) -> None:
    choice = galera.galera_bootstrap_choice(crashed(9, 5, 1), ORDER, None, "database03")
    assert (choice["action"], choice["node"]) == ("bootstrap", "database03")
    with pytest.raises(AnsibleFilterError, match="database09 is not a database node"):
        galera.galera_bootstrap_choice(crashed(9, 5, 1), ORDER, None, "database09")


def test_a_refusal_becomes_the_plans_reason(galera) -> None:
    plan = galera.galera_start_plan(crashed(5, 6, 7, uuids=(UUID, UUID, OTHER_UUID)), ORDER)
    assert plan["action"] == "refuse"
    assert "different cluster UUIDs" in plan["reason"]


# --- the final check and the rolling restart ---------------------------------------------------------------


def test_members_not_synced_are_named(galera) -> None:
    states = {"database01": running(), "database02": running(state="Joining"), "database03": stopped()}
    assert galera.galera_not_synced(states, ORDER, 3) == [
        "database02 (Primary, Joining, size 3)",
        "database03 (mariadb inactive)",
    ]
    assert galera.galera_not_synced({"database01": running(size=2)}, ["database01", "database02"], 3) == [
        "database01 (Primary, Synced, size 2)",
        "database02 (did not answer)",
    ]
    assert galera.galera_not_synced({host: running() for host in ORDER}, ORDER, 3) == []


def test_a_rolling_restart_starts_the_members_outside_the_component_first(galera) -> None:
    states = {"database01": running(size=2), "database02": stopped(), "database03": running(size=2)}
    plan = galera.galera_restart_plan(states, ORDER)
    assert plan["order"] == ["database02", "database01", "database03"]
    assert plan["sizes"] == {"database02": 3, "database01": 3, "database03": 3}
    assert "database02 (outside it) first" in plan["reason"]
    plan = galera.galera_restart_plan({host: running() for host in ORDER}, ORDER, ["database02"])
    assert (plan["order"], plan["sizes"]) == (["database02"], {"database02": 3})


def test_a_rolling_restart_without_a_primary_component_is_refused(galera) -> None:
    with pytest.raises(AnsibleFilterError, match="services start --service mariadb"):
        galera.galera_restart_plan(crashed(1, 2, 3), ORDER)
    assert galera.galera_restart_order(crashed(1, 2, 3), ORDER)["action"] == "refuse"
    assert galera.galera_restart_order({host: running() for host in ORDER}, ORDER)["action"] == "restart"
