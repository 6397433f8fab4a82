"""A watcher for secrets on command lines: reads every /proc/*/cmdline and /proc/*/environ, as often as it can.

Runs as a child process at a low priority (the run it watches keeps the CPU it needs) and takes the
secrets on its stdin, never on its own command line. Reading /proc of the host covers the OMS and
every lab node: a node's processes live in a child PID namespace, visible from the host.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The sampler itself; it reports hits by secret name and process, never the value.
_SCRIPT = r"""
import json, os, re, signal, sys
import yaml
os.nice(10)
request = json.loads(sys.stdin.readline())
names, pattern, store_stamp = {}, None, None
def learn(secrets):
    global pattern
    names.update({value.encode(): name for name, value in secrets.items() if len(value) >= 8})
    pattern = re.compile(b"|".join(re.escape(v) for v in sorted(names, key=len, reverse=True)))
def flat(data):
    out = {}
    for name, value in (data or {}).items():
        items = value if isinstance(value, list) else [value]
        out.update({f"{name}[{i}]" if isinstance(value, list) else name: str(v) for i, v in enumerate(items) if v})
    return out
def reload_store():
    # A secrets store that changes while sampling (a rotation): its new values are searched too.
    global store_stamp
    try:
        stamp = os.stat(request["store"]).st_mtime_ns
    except (OSError, TypeError):
        return
    if stamp != store_stamp:
        store_stamp = stamp
        with open(request["store"], encoding="utf-8") as handle:
            learn(flat(yaml.safe_load(handle)))
learn(request["secrets"])
me = str(os.getpid())
stop = False
def halt(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, halt)
passes, hits, seen = 0, [], set()
while not stop:
    reload_store()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        for kind in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{kind}", "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            for match in pattern.finditer(data):
                key = (pid, kind, names[match.group()])
                if key not in seen:
                    seen.add(key)
                    try:
                        with open(f"/proc/{pid}/comm", "rb") as handle:
                            comm = handle.read().decode(errors="replace").strip()
                    except OSError:
                        comm = "?"
                    hits.append({"pid": int(pid), "where": kind, "secret": key[2], "process": comm})
    passes += 1
print(json.dumps({"passes": passes, "hits": hits}))
"""


@dataclass
class ProcSampler:
    """Context manager: samples while the block runs; ``hits`` lists every secret seen, by name."""

    secrets: Mapping[str, str]
    store: Path | None = None  # a plain secrets.yml to re-read when it changes
    passes: int = 0
    hits: list[dict] = field(default_factory=list)
    _process: subprocess.Popen | None = None

    def __enter__(self) -> ProcSampler:
        needles = {name: value for name, value in self.secrets.items() if len(value) >= 8}
        assert needles, "nothing to look for"
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
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


def flatten(secrets: Mapping[str, object]) -> dict[str, str]:
    """Every string a secrets store holds, by name (list values as name[0], name[1], ...)."""
    flat: dict[str, str] = {}
    for name, value in secrets.items():
        if isinstance(value, list):
            flat.update({f"{name}[{index}]": str(item) for index, item in enumerate(value)})
        elif value is not None:
            flat[name] = str(value)
    return flat
