"""The lab's record of everything it creates, written before or as it is created.

``lab down`` undoes the records newest first, so it removes exactly what the lab made: a bridge
or namespace of the same name that the lab did not create is never recorded, never removed.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from viocli.atomic import write_atomic


class Journal:
    """Append-only JSON-lines file of created resources, safe across processes."""

    def __init__(self, path: Path):
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def record(self, kind: str, **fields: Any) -> None:
        """Remember one created resource (durably, before the caller goes on)."""
        line = json.dumps({"kind": kind, **fields}, sort_keys=True) + "\n"
        with self._locked() as fd:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)

    def forget(self, kind: str, **match: Any) -> None:
        """Drop the records of a resource that was removed on purpose (e.g. a destroyed node)."""
        with self._locked():
            kept = [r for r in self._read() if not (r.get("kind") == kind and _matches(r, match))]
            text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
            write_atomic(self.path, text.encode("utf-8"), 0o600)

    def _read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a torn last line after a crash: the resource was not created yet
        return records

    def records(self) -> list[dict[str, Any]]:
        """Every record, oldest first (reading creates nothing)."""
        if not self.path.exists():
            return []
        with self._locked():
            return self._read()


def _matches(record: dict[str, Any], match: dict[str, Any]) -> bool:
    return all(record.get(key) == value for key, value in match.items())
