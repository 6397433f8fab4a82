"""Redaction of every known secret value from text and from nested data (events, logs, artifacts)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "********"
# Shorter values would mask ordinary words; generated secrets are 32+ characters.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces any registered secret value with ``********``."""

    def __init__(self, values: Iterable[str] = ()):
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Register more secret values (empty and very short ones are ignored)."""
        new = {str(v) for v in values if v is not None and len(str(v)) >= MIN_SECRET_LENGTH}
        if new - self._values:
            self._values |= new
            # Longest first, so a secret that contains another is masked whole.
            alternatives = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))

    def clear(self) -> None:
        """Forget every registered value."""
        self._values = set()
        self._pattern = None

    def __bool__(self) -> bool:
        return bool(self._values)

    def text(self, text: str) -> str:
        """Mask every secret in one string."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def data(self, value: Any) -> Any:
        """Mask every secret in strings nested anywhere in dicts, lists and tuples (keys included)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.data(v) for v in value)
        return value

    def data_in_place(self, value: dict) -> None:
        """Mask a dict's values where it is (runner writes the same dict object to its artifacts)."""
        for key in list(value):
            value[key] = self.data(value[key])


# One per process: everything viocli writes goes through it.
REDACTOR = Redactor()
