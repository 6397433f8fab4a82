"""A watcher for secrets on command lines: reads every /proc/*/cmdline and /proc/*/environ, as often as it can.

Runs as a child process (``python -m tests.lab.sampler``) at a low priority, so the run it watches
keeps the CPU it needs, and takes the secrets on its stdin, never on its own command line. Reading
/proc of the host covers the OMS and every lab node: a node's processes live in a child PID
namespace, visible from the host. It reports hits by secret name and process, never the value.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MIN_LENGTH = 8  # shorter values would match by chance


def flatten(secrets: Mapping[str, object] | None) -> dict[str, str]:
    """Every string a secrets store holds, by name (list values as name[0], name[1], ...)."""
    flat: dict[str, str] = {}
    for name, value in (secrets or {}).items():
        if isinstance(value, list):
            flat.update({f"{name}[{index}]": str(item) for index, item in enumerate(value)})
        elif value is not None:
            flat[name] = str(value)
    return flat


class _Needles:
    """The secret values searched for, by value; grows when the watched secrets store changes."""

    def __init__(self, secrets: Mapping[str, str], store: str | None):
        self.names: dict[bytes, str] = {}
        self.pattern: re.Pattern[bytes] | None = None
        self.store, self._stamp = store, None
        self.learn(secrets)

    def learn(self, secrets: Mapping[str, str]) -> None:
        self.names.update({v.encode(): k for k, v in secrets.items() if len(v) >= MIN_LENGTH})
        alternatives = sorted(self.names, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(v) for v in alternatives))

    def reload(self) -> None:
        """A store that changed while sampling (a rotation): its new values are searched too."""
        try:
            stamp = os.stat(self.store).st_mtime_ns if self.store else None
        except OSError:
            return
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            self.learn(flatten(yaml.safe_load(Path(self.store).read_text(encoding="utf-8"))))


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _sample(needles: _Needles) -> dict:
    """Pass over /proc until SIGTERM; the number of passes and every (pid, file, secret) seen once."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    me = str(os.getpid())
    passes, hits, seen = 0, [], set()
    while not stopping:
        needles.reload()
        for pid in (p for p in os.listdir("/proc") if p.isdigit() and p != me):
            for kind in ("cmdline", "environ"):
                for match in needles.pattern.finditer(_read(f"/proc/{pid}/{kind}") or b""):
                    key = (pid, kind, needles.names[match.group()])
                    if key not in seen:
                        seen.add(key)
                        comm = (_read(f"/proc/{pid}/comm") or b"?").decode(errors="replace").strip()
                        hits.append({"pid": int(pid), "where": kind, "secret": key[2], "process": comm})
        passes += 1
    return {"passes": passes, "hits": hits}


def main() -> None:
    """The child: the request (secrets and the store to watch) on stdin, the report on stdout."""
    os.nice(10)
    request = json.loads(sys.stdin.readline())
    print(json.dumps(_sample(_Needles(request["secrets"], request["store"]))))


@dataclass
class ProcSampler:
    """Context manager: samples while the block runs; ``hits`` lists every secret seen, by name."""

    secrets: Mapping[str, str]
    store: Path | None = None  # a plain secrets.yml to re-read when it changes
    passes: int = 0
    hits: list[dict] = field(default_factory=list)
    _process: subprocess.Popen | None = None

    def __enter__(self) -> ProcSampler:
        needles = {name: value for name, value in self.secrets.items() if len(value) >= MIN_LENGTH}
        assert needles, "nothing to look for"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.lab.sampler"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self._process.stdin is not None
        request = {"secrets": needles, "store": str(self.store) if self.store else None}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.close()
        self._process.stdin = None  # communicate() must not flush it again
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)  # our own child, by its pid
        out, _ = self._process.communicate(timeout=60)
        report = json.loads(out)
        self.passes, self.hits = report["passes"], report["hits"]


if __name__ == "__main__":
    main()
