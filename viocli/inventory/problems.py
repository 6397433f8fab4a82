"""Problems found in an inventory or custom.yml, each located at file:line:column."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from viocli.errors import BadInput

Location = tuple[str | int, ...]


def dotted(path: Location) -> str:
    """``('networks', 'management', 'pool', 0)`` -> ``networks.management.pool[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file."""

    file: Path
    path: Location
    message: str
    line: int | None = None
    column: int | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        subject = f"{dotted(self.path)}: " if self.path else ""
        return f"{where}: {self.severity}: {subject}{self.message}"


@dataclass
class Marks:
    """Where each key and value of a YAML document sits (1-based line and column)."""

    keys: dict[Location, tuple[int, int]] = field(default_factory=dict)
    values: dict[Location, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Location, *, value: bool = False) -> tuple[int | None, int | None]:
        """Position of ``path``; falls back to the nearest enclosing key that exists."""
        table = self.values if value else self.keys
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.keys:
                return self.keys[probe]
            probe = probe[:-1]
        return self.values.get((), (None, None))


class ProblemCollector:
    """Accumulates problems for one file, located through its marks."""

    def __init__(self, file: Path, marks: Marks):
        self.file = file
        self.marks = marks
        self.problems: list[Problem] = []

    def add(
        self,
        path: Location,
        message: str,
        *,
        severity: str = "error",
        value: bool = False,
        at: Location | None = None,
    ) -> None:
        """Record a problem about ``path``, located at ``at`` (default: ``path`` itself)."""
        line, column = self.marks.locate(path if at is None else at, value=value)
        self.problems.append(Problem(self.file, tuple(path), message, line, column, severity))

    def error(self, path: Location, message: str, *, value: bool = True, at: Location | None = None) -> None:
        self.add(path, message, severity="error", value=value, at=at)

    def warning(self, path: Location, message: str, *, value: bool = False) -> None:
        self.add(path, message, severity="warning", value=value)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


class InvalidInventory(BadInput):
    """Raised with every problem of an input file at once (exit 2)."""

    def __init__(self, file: Path, problems: list[Problem]):
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(
            f"{file}: {len(errors)} problem{'s' if len(errors) != 1 else ''} found; nothing was changed",
            hint=f"fix them and check again with: viocli inventory validate -i {file}",
            details=[str(p) for p in problems],
        )
        self.file = file
        self.problems = problems
