"""Problems found in an inventory or custom.yml, each located at file:line:column."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from viocli.errors import BadInput

Location = tuple[str | int, ...]

EXCERPT_LIMIT = 40
# A path is only quoted once its rule passed (one line, at most PATH_MAX characters).
PATH_EXCERPT_LIMIT = 100
# A key that may be shown as it is: short, and nothing a terminal or a log reader could misread.
PLAIN_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,39}")


def excerpt(value: object, limit: int = EXCERPT_LIMIT, *, keep_end: bool = False) -> str:
    """A short, escaped quotation of a value read from an input file, for an error message.

    At most ``limit`` characters of the value are quoted (``…`` marks the cut; ``keep_end`` keeps
    the end, e.g. of a path); ``repr`` escapes control and other non-printable characters, so a
    value can neither forge a line of output nor send escape sequences to a terminal.
    """
    if not isinstance(value, str):
        text = repr(value)  # numbers, dates, booleans: nothing to escape
        return text if len(text) <= limit else text[:limit] + "…"
    if len(value) <= limit:
        return repr(value)
    return "…" + repr(value[-limit:]) if keep_end else repr(value[:limit]) + "…"


def path_excerpt(value: object) -> str:
    """A path quoted in a message: escaped, and long enough (its end) for the operator to find it."""
    return excerpt(str(value), PATH_EXCERPT_LIMIT, keep_end=True)


def is_plain_key(key: object) -> bool:
    """True for a key that may be quoted as it is (short and identifier-like)."""
    return isinstance(key, str) and PLAIN_KEY_RE.fullmatch(key) is not None


def dotted(path: Location) -> str:
    """``('networks', 'management', 'pool', 0)`` -> ``networks.management.pool[0]``.

    A part that is not a plain key (it came from the file) is shown as a short escaped excerpt.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not is_plain_key(part):
            text += f"[{excerpt(part)}]"
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
