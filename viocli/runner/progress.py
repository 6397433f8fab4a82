"""Live progress of an Ansible run, fed by ansible-runner events (already redacted).

On a terminal: a live line with the current play and task, hosts ok/changed/failed/unreachable
and the elapsed time. Elsewhere (pipes, CI, cron): one line per play, every failure, the recap.
``-v`` adds a line per task and per host result.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from typing import Any, TextIO

RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colour and cursor codes


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


GENERIC_MESSAGES = ("non-zero return code", "One or more items failed", "MODULE FAILURE")


def _reason(res: dict[str, Any]) -> str:
    """A result's own error: its message, unless that only says that the command failed."""
    message = str(res.get("msg") or "")
    keys = ("stderr", "reason", "module_stderr", "stdout") if message.startswith(GENERIC_MESSAGES) else ()
    for key in (*keys, "msg", "stderr", "reason", "module_stderr", "stdout"):
        value = res.get(key)
        if value:
            lines = [line.strip() for line in str(value).splitlines() if line.strip()]
            return " ".join(lines[0].split())[:400] if key != "msg" and lines else " ".join(str(value).split())[:400]
    return "(no message)"


def result_message(event_data: dict[str, Any]) -> str:
    """The most useful one-line reason from a task result: for a loop, the first failed item's own."""
    res = event_data.get("res") or {}
    if not isinstance(res, dict):
        return str(res)
    items = [r for r in res.get("results") or [] if isinstance(r, dict) and r.get("failed")]
    if items:
        item = items[0]
        label = item.get("_ansible_item_label", item.get("item"))
        where = f"{item.get('_ansible_delegated_vars', {}).get('ansible_host', '')}".strip()
        prefix = f"{label}: " if label is not None else ""
        return prefix + _reason(item) + (f" (on {where})" if where and where != label else "")
    return _reason(res)


def result_hint(event_data: dict[str, Any]) -> str | None:
    """The hint a task result carries (``viocli_hint``, set by viocli's own modules), if any."""
    res = event_data.get("res") or {}
    if not isinstance(res, dict):
        return None
    for result in [res, *(r for r in res.get("results") or [] if isinstance(r, dict))]:
        if result.get("viocli_hint"):
            return str(result["viocli_hint"])
    return None


class RunProgress:
    """Renders runner events for the operator."""

    def __init__(
        self,
        title: str,
        *,
        verbosity: int = 0,
        stream: TextIO | None = None,
        live: bool | None = None,
        show_diff: bool = False,
    ):
        self.title = title
        self.verbosity = verbosity
        self.show_diff = show_diff
        self.stream = stream or sys.stderr
        self.live_enabled = self.stream.isatty() if live is None else live
        self.started = time.monotonic()
        self.play = ""
        self.task = ""
        self.counts: Counter[str] = Counter()
        self._live = None
        self._console = None

    # --- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> RunProgress:
        if self.live_enabled:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream)
            self._live = Live(self._render(), console=self._console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        else:
            self._print(f"{self.title}: started")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    # --- output --------------------------------------------------------------------------------
    def _render(self):
        from rich.text import Text

        c = self.counts
        line = Text()
        line.append(f"{self.title} ", style="bold")
        if self.play:
            line.append(f"PLAY [{self.play}] ", style="cyan")
        if self.task:
            line.append(f"TASK [{self.task}] ")
        line.append(f"ok {c['ok']} ", style="green")
        line.append(f"changed {c['changed']} ", style="yellow")
        line.append(f"failed {c['failed']} ", style="red" if c["failed"] else "")
        line.append(f"unreachable {c['unreachable']} ", style="red" if c["unreachable"] else "")
        line.append(_elapsed(time.monotonic() - self.started), style="dim")
        return line

    def _print(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _print_diff(self, stdout: str) -> None:
        for line in ANSI_RE.sub("", stdout).splitlines():
            if line.startswith(("---", "+++", "@@", "+", "-", " ")) and not line.startswith("changed:"):
                self._print(f"    {line}")

    # --- events --------------------------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        """Update the display for one runner event."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "runner_on_file_diff" and self.show_diff:
            self._print_diff(event.get("stdout") or "")
        elif kind == "playbook_on_play_start":
            self.play = data.get("play", "")
            self.task = ""
            self._print(f"PLAY [{self.play}]  ({_elapsed(time.monotonic() - self.started)})")
        elif kind == "playbook_on_task_start":
            self.task = data.get("task", "")
            if self.verbosity >= 1:
                self._print(f"  TASK [{self.task}]")
        elif kind in RESULT_EVENTS:
            status = RESULT_EVENTS[kind]
            host = data.get("host", "?")
            if status == "ok" and (data.get("res") or {}).get("changed"):
                status = "changed"
            if status == "failed" and data.get("ignore_errors"):
                status = "ok"
            self.counts[status] += 1
            if status in ("failed", "unreachable"):
                self._print(f"  {status.upper()}: {host}: TASK [{self.task}]: {result_message(data)}")
            elif status == "changed" and self.show_diff:
                # --diff: say what changed where; Ansible's own rendering of the difference comes in its
                # own file_diff event (before this one) or, from some callbacks, in this one's stdout
                self._print(f"  changed: {host}: TASK [{self.task}]")
                self._print_diff(event.get("stdout") or "")
            elif self.verbosity >= 1:
                self._print(f"    {status}: {host}")
        self._refresh()

    def recap(self, stats: dict[str, dict[str, int]]) -> None:
        """Print the per-host recap (ok/changed/failed/unreachable/skipped)."""
        hosts = sorted({h for counts in stats.values() for h in counts})
        if not hosts:
            return
        width = max(len(h) for h in hosts)
        self._print(f"RECAP  ({_elapsed(time.monotonic() - self.started)})")
        for host in hosts:
            values = {key: stats.get(key, {}).get(host, 0) for key in ("ok", "changed", "failures", "dark", "skipped")}
            self._print(
                f"  {host:<{width}}  ok={values['ok']} changed={values['changed']} failed={values['failures']} "
                f"unreachable={values['dark']} skipped={values['skipped']}"
            )
