"""Run one playbook through ansible-runner and turn the outcome into viocli's exit codes.

Secrets reach Ansible only through a 0600 vars file inside the private data dir, removed after the
run; never argv, never the environment. Every event is redacted in place before ansible-runner
writes it to the artifacts, before the log and before the console.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from viocli.atomic import write_atomic
from viocli.children import die_with_viocli
from viocli.errors import NodesUnreachable, OperationFailed
from viocli.logsetup import get_logger
from viocli.redact import REDACTOR
from viocli.runner.plan import PlaybookRun
from viocli.runner.progress import ANSI_RE, RESULT_EVENTS, RunProgress, result_hint, result_message
from viocli.runner.settings import ansible_env
from viocli.secrets.catalog import secret_values

ROTATE_ARTIFACTS = 30


@dataclass
class RunTarget:
    """Where and on what a playbook runs: built by the operations layer from a deployment."""

    name: str
    work_dir: Path
    playbook_dir: Path
    inventory: dict[str, Any]
    secrets: dict[str, Any] = field(default_factory=dict)
    custom_vars: dict[str, Any] = field(default_factory=dict)
    node_count: int = 1
    ssh_key: Path | None = None
    mitogen: bool = True  # tuned runs use Mitogen for Ansible (viocli.conf [ansible] mitogen)

    @property
    def known_hosts(self) -> Path:
        return self.work_dir / "known_hosts"


@dataclass
class RunResult:
    """The outcome of a run that completed (failures raise instead)."""

    status: str
    rc: int
    stats: dict[str, dict[str, int]]
    artifact_dir: Path
    elapsed: float

    @property
    def changed(self) -> int:
        return sum(self.stats.get("changed", {}).values())

    def hosts(self, key: str) -> list[str]:
        return sorted(h for h, n in self.stats.get(key, {}).items() if n)


@dataclass
class _Collector:
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    stdout: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)  # what the failed tasks say to do


class _DataDumper(yaml.SafeDumper):
    """Writes every string value with Ansible's ``!unsafe`` tag: data Ansible never templates.

    Values come from the inventory, custom.yml, the secrets store and ``-e``; a ``{{ ... }}`` in
    any of them must reach the nodes as those characters, never run as Jinja on the OMS. Keys stay
    plain (they are variable and host names). No anchors: every value is written out where it is.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_unsafe_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", value)


def _represent_mapping(dumper: yaml.SafeDumper, data: Mapping[Any, Any]) -> yaml.MappingNode:
    pairs = [
        (yaml.SafeDumper.represent_str(dumper, key) if isinstance(key, str) else dumper.represent_data(key),
         dumper.represent_data(value))
        for key, value in sorted(data.items(), key=lambda item: str(item[0]))
    ]  # fmt: skip
    return yaml.MappingNode("tag:yaml.org,2002:map", pairs, flow_style=False)


_DataDumper.add_representer(str, _represent_unsafe_str)
_DataDumper.add_representer(dict, _represent_mapping)


def _write_yaml(path: Path, data: Any, mode: int = 0o600) -> None:
    """Write ``data`` for Ansible to read as data (see :class:`_DataDumper`), ``mode`` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = yaml.dump(data, Dumper=_DataDumper, default_flow_style=False, allow_unicode=True)
    write_atomic(path, text.encode("utf-8"), mode)


def prepare_data_dir(target: RunTarget, extravars: Mapping[str, Any]) -> tuple[Path, Path]:
    """Lay out ansible-runner's private data dir; returns it and the secrets file to remove after."""
    data_dir = target.work_dir / "runner"
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    inventory_dir = data_dir / "inventory"
    if inventory_dir.exists():
        shutil.rmtree(inventory_dir)
    _write_yaml(inventory_dir / "hosts.yml", target.inventory)
    secrets_file = inventory_dir / "group_vars" / "all" / "secrets.yml"
    _write_yaml(secrets_file, dict(target.secrets))
    _write_yaml(data_dir / "env" / "extravars", dict(extravars))
    config_file = data_dir / "ansible.cfg"
    config_file.write_text("# viocli passes every setting through the environment\n", encoding="utf-8")
    (target.work_dir / "facts").mkdir(parents=True, exist_ok=True, mode=0o700)
    if not target.known_hosts.exists():
        fd = os.open(target.known_hosts, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    return data_dir, secrets_file


@contextmanager
def _playbook_dies_with_viocli() -> Iterator[None]:
    """While a run lasts, ansible-runner's children get :func:`~viocli.children.die_with_viocli` (it
    offers no hook of its own: its pexpect.spawn call is given the ``preexec_fn`` pexpect has). Without
    it a killed viocli leaves the playbook (pexpect's child ignores SIGHUP and leads a session of its
    own) changing the deployment after the lock's holder is gone, and a second run could start beside it."""
    import pexpect

    spawn = pexpect.spawn
    pexpect.spawn = functools.partial(spawn, preexec_fn=die_with_viocli())  # type: ignore[misc]
    try:
        yield
    finally:
        pexpect.spawn = spawn  # type: ignore[misc]


class _Interrupt:
    """Turns Ctrl-C into a clean cancel of the running playbook."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, _signum: int, _frame: Any) -> None:
        self.requested = True

    def __exit__(self, *_exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def run_playbook(
    target: RunTarget,
    run: PlaybookRun,
    *,
    cli_vars: Mapping[str, Any] | None = None,
    tuned: bool = True,
    verbosity: int = 0,
    progress: RunProgress | None = None,
    timeout: int | None = None,
) -> RunResult:
    """Run ``run`` against ``target``; raise OperationFailed (1) or NodesUnreachable (3) on failure.

    Extra vars, lowest to highest: custom.yml, then ``-e`` from the command line, then the
    command's own ``viocli_*`` variables (a separate name space, so nothing is shadowed).
    """
    import ansible_runner

    log = get_logger()
    playbook_path = target.playbook_dir / run.playbook
    if not playbook_path.is_file():
        raise OperationFailed(
            f"playbook {run.playbook} is missing from {target.playbook_dir}",
            hint="the viocli installation is incomplete; reinstall it",
        )
    REDACTOR.add(text for value in target.secrets.values() for text in secret_values(value))
    extravars = {**target.custom_vars, **dict(cli_vars or {}), **dict(run.extravars)}
    data_dir, secrets_file = prepare_data_dir(target, extravars)
    env = ansible_env(
        work_dir=target.work_dir,
        playbook_dir=target.playbook_dir,
        config_file=data_dir / "ansible.cfg",
        known_hosts=target.known_hosts,
        node_count=target.node_count,
        ssh_key=target.ssh_key,
        tuned=tuned,
        mitogen=target.mitogen,
    )
    ident = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{Path(run.playbook).stem}"
    collected = _Collector()
    progress = progress or RunProgress(f"{target.name}: {run.playbook}", verbosity=verbosity, show_diff=run.diff)

    def on_event(event: dict[str, Any]) -> bool:
        REDACTOR.data_in_place(event)
        text = ANSI_RE.sub("", event.get("stdout") or "")
        if text:
            collected.stdout.append(text)
            for line in text.splitlines():
                if line.strip():
                    log.info("ansible: %s", line)
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if RESULT_EVENTS.get(kind) == "failed" and not data.get("ignore_errors"):
            collected.failures.setdefault(data.get("host", "?"), []).append(
                f"TASK [{data.get('task', '?')}]: {result_message(data)}"
            )
            hint = result_hint(data)
            if hint and hint not in collected.hints:
                collected.hints.append(hint)
        elif RESULT_EVENTS.get(kind) == "unreachable":
            collected.unreachable[data.get("host", "?")] = result_message(data)
        elif kind == "playbook_on_stats":
            collected.stats = {
                key: dict(data.get(key) or {})
                for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")
            }
        progress.on_event(event)
        return True

    log.info(
        "run %s on %s: tags=%s skip_tags=%s limit=%s check=%s diff=%s tuned=%s mitogen=%s ident=%s",
        run.playbook,
        target.name,
        ",".join(run.tags) or "-",
        ",".join(run.skip_tags) or "-",
        run.limit or "-",
        run.check,
        run.diff,
        tuned,
        env.get("ANSIBLE_STRATEGY") == "mitogen_linear",
        ident,
    )
    started = time.monotonic()
    try:
        with _Interrupt() as interrupt, progress, _playbook_dies_with_viocli():
            runner = ansible_runner.run(
                private_data_dir=str(data_dir),
                project_dir=str(target.playbook_dir),
                playbook=run.playbook,
                inventory=str(data_dir / "inventory"),
                ident=ident,
                tags=",".join(run.tags) or None,
                skip_tags=",".join(run.skip_tags) or None,
                limit=run.limit,
                cmdline=run.cmdline(),
                envvars=env,
                verbosity=max(0, verbosity - 1) or None,
                rotate_artifacts=ROTATE_ARTIFACTS,
                suppress_env_files=True,
                suppress_output_file=True,
                quiet=True,
                fact_cache_type=None,
                event_handler=on_event,
                cancel_callback=lambda: interrupt.requested,
                timeout=timeout,
            )
    finally:
        secrets_file.unlink(missing_ok=True)
    elapsed = time.monotonic() - started
    artifact_dir = data_dir / "artifacts" / ident
    _write_redacted_stdout(artifact_dir, collected.stdout)
    _strip_inherited_environment(artifact_dir, set(env))
    if collected.stats:
        progress.recap(collected.stats)
    status, rc = runner.status, runner.rc if runner.rc is not None else -1
    log.info("run %s finished: status=%s rc=%s in %.1fs", run.playbook, status, rc, elapsed)
    return _outcome(run, target, status, rc, collected, artifact_dir, elapsed)


def _write_redacted_stdout(artifact_dir: Path, chunks: list[str]) -> None:
    if not artifact_dir.is_dir():
        return
    fd = os.open(artifact_dir / "stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(chunks) + "\n")


def _strip_inherited_environment(artifact_dir: Path, keep: set[str]) -> None:
    """ansible-runner records the whole environment of viocli in ``command``; keep only ours.

    The operator's shell may hold credentials (an OpenStack rc file, a proxy password).
    """
    command_file = artifact_dir / "command"
    try:
        record = json.loads(command_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    record["env"] = {k: v for k, v in (record.get("env") or {}).items() if k in keep}
    fd = os.open(command_file, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(REDACTOR.data(record), handle)


def _outcome(
    run: PlaybookRun, target: RunTarget, status: str, rc: int, collected: _Collector, artifact_dir: Path, elapsed: float
) -> RunResult:
    result = RunResult(status=status, rc=rc, stats=collected.stats, artifact_dir=artifact_dir, elapsed=elapsed)
    where = f"{run.playbook} on {target.name}"
    details = [
        f"failed on {host}: {reason}" for host, reasons in sorted(collected.failures.items()) for reason in reasons
    ]
    details += [f"unreachable: {host}: {reason}" for host, reason in sorted(collected.unreachable.items())]
    details.append(f"artifacts: {artifact_dir}")
    failed_hosts = result.hosts("failures") or sorted(collected.failures)
    unreachable_hosts = result.hosts("dark") or sorted(collected.unreachable)
    if status == "canceled":
        raise OperationFailed(
            f"{where} was interrupted", hint="run the same command again to complete it", details=details
        )
    if status == "timeout":
        raise OperationFailed(f"{where} timed out after {elapsed:.0f}s", details=details)
    if unreachable_hosts:
        also = f"; failed on {', '.join(failed_hosts)}" if failed_hosts else ""
        raise NodesUnreachable(
            f"{where}: unreachable node(s): {', '.join(unreachable_hosts)}{also}",
            hint="check that the nodes are powered on and reachable over SSH from the OMS, then run again",
            details=details,
        )
    if failed_hosts:
        raise OperationFailed(
            f"{where} failed on {', '.join(failed_hosts)}",
            hint="; ".join(collected.hints) or "fix the cause shown above, then run the same command again: it resumes",
            details=details,
        )
    if status != "successful" or rc != 0:
        tail = [line for chunk in collected.stdout[-5:] for line in chunk.splitlines() if line.strip()][-8:]
        raise OperationFailed(
            f"{where}: ansible-playbook stopped before finishing (status {status}, rc {rc})",
            details=[*tail, f"artifacts: {artifact_dir}"],
        )
    return result


def read_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """The job events of a finished run, in order (for tests and post-mortems)."""
    events_dir = artifact_dir / "job_events"
    files = sorted(events_dir.glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]
