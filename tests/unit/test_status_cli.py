"""`viocli deployment status` on the command line: JSON and table output, exit codes, any user."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from viocli.cli.main import cli
from viocli.health.result import Result, Status
from viocli.ops import status as ops_status
from viocli.ops.status import StatusReport


def _report(*statuses: Status) -> StatusReport:
    results = [
        Result(
            collector_name=f"Verify{index}",
            overall_status=status,
            nodes=[] if status is Status.SUCCESS else [f"database0{index}"],
            message="ok" if status is Status.SUCCESS else f"database0{index}: something is {status}",
            action="" if status is Status.SUCCESS else f"sudo viocli services restart --node database0{index}",
            details=[f"database0{index}: detail"],
            elapsed_s=0.123,
        )
        for index, status in enumerate(statuses, start=1)
    ]
    results[0].collector_name = "VerifyTimeSynchronization"
    return StatusReport("vio-prod", results, 1.5)


@pytest.fixture
def fake_status(viocli_env, monkeypatch: pytest.MonkeyPatch):
    """Replace the operation: the test sets the report it returns; records the deployment asked for."""
    calls: list[str | None] = []

    def install(report: StatusReport) -> list[str | None]:
        def deployment_status(settings, name):
            calls.append(name)
            return report

        monkeypatch.setattr(ops_status, "deployment_status", deployment_status)
        return calls

    return install


def test_json_is_an_array_of_results_with_vmware_field_names(fake_status) -> None:
    calls = fake_status(_report(Status.SUCCESS, Status.WARNING, Status.SUCCESS))
    result = CliRunner().invoke(cli, ["deployment", "status", "--format", "json", "-d", "vio-prod"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, list) and len(data) == 3
    for item in data:
        assert {"collector_name", "overall_status", "nodes", "message", "action"} <= set(item)
        assert item["overall_status"] in ("SUCCESS", "WARNING", "FAILURE")
        assert isinstance(item["nodes"], list)
    assert data[0]["collector_name"] == "VerifyTimeSynchronization"
    assert data[1] == {
        "collector_name": "Verify2",
        "overall_status": "WARNING",
        "nodes": ["database02"],
        "message": "database02: something is WARNING",
        "action": "sudo viocli services restart --node database02",
        "details": ["database02: detail"],
        "elapsed_s": 0.12,
    }
    assert calls == ["vio-prod"]
    assert result.stderr == ""


def test_any_failure_exits_1_with_one_line_naming_the_failed_checks(fake_status) -> None:
    fake_status(_report(Status.SUCCESS, Status.FAILURE, Status.WARNING, Status.FAILURE))
    result = CliRunner().invoke(cli, ["deployment", "status", "--format", "json"])
    assert result.exit_code == 1
    assert len(json.loads(result.stdout)) == 4, "the results are printed before the command fails"
    first = result.stderr.splitlines()[0]
    assert first == "viocli: error: deployment vio-prod is not healthy: Verify2, Verify4 report FAILURE"


def test_table_has_a_row_per_collector_and_a_summary(fake_status) -> None:
    fake_status(_report(Status.SUCCESS, Status.WARNING, Status.FAILURE))
    result = CliRunner().invoke(cli, ["deployment", "status"])
    assert result.exit_code == 1
    out = result.stdout
    for header in ("collector", "status", "nodes", "message", "action"):
        assert header in out
    for text in ("VerifyTimeSynchronization", "SUCCESS", "WARNING", "FAILURE", "database03: something is FAILURE"):
        assert text in out
    assert "sudo viocli services restart --node database03" in out
    assert "deployment vio-prod: 1 SUCCESS, 1 WARNING, 1 FAILURE (1.5 s)" in out


def test_output_never_carries_markup_control_characters_or_a_secret(fake_status) -> None:
    from viocli.redact import REDACTOR

    report = _report(Status.WARNING)
    report.results[0].message = "[bold red]x[/] \x1b[2J leaked s3cret-value"
    REDACTOR.add(["s3cret-value"])
    fake_status(report)
    table = CliRunner().invoke(cli, ["deployment", "status"])
    assert "[bold red]x[/]" in table.stdout and "\x1b" not in table.stdout
    assert "s3cret-value" not in table.stdout
    data = json.loads(CliRunner().invoke(cli, ["deployment", "status", "--format", "json"]).stdout)
    assert "\x1b" not in data[0]["message"] and "s3cret-value" not in data[0]["message"]


def test_warnings_only_exit_0_and_any_user_may_run_it(fake_status, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    fake_status(_report(Status.WARNING, Status.WARNING))
    result = CliRunner().invoke(cli, ["deployment", "status", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [item["overall_status"] for item in json.loads(result.stdout)] == ["WARNING", "WARNING"]


def test_an_unknown_deployment_is_bad_input(viocli_env) -> None:
    result = CliRunner().invoke(cli, ["deployment", "status", "-d", "nope"])
    assert result.exit_code == 2
    assert "deployment 'nope' is not known on this OMS" in result.stderr


def test_json_of_a_real_run_on_a_fresh_oms(viocli_env, example, monkeypatch: pytest.MonkeyPatch) -> None:
    from viocli.health import context as health_context

    from .test_status_run import _record

    _record(viocli_env, example)
    monkeypatch.setattr(health_context, "ssh_banner", lambda address, timeout=5: (True, "SSH-2.0-OpenSSH_9.2p1"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["deployment", "status", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [item["collector_name"] for item in data] == [
        "VerifyVMPowerState",
        "VerifyNodeReachable",
        "VerifyTimeSynchronization",
        "VerifyGaleraCluster",
        "VerifyRabbitMQCluster",
        "VerifyMemcached",
        "VerifyHAProxyBackends",
        "VerifyVIPs",
        "VerifyCertificates",
        "VerifyOpenStackAPIs",
        "VerifyNovaComputeServices",
        "VerifyDiskSpace",
    ]
    assert {item["overall_status"] for item in data} == {"SUCCESS", "WARNING"}
