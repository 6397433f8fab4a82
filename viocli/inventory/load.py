"""Load an inventory file and its custom.yml, validating everything and reporting all problems at once."""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from viocli.inventory.checks import check_inventory
from viocli.inventory.model import CONTROL_RE, Inventory
from viocli.inventory.problems import (
    InvalidInventory,
    Location,
    Marks,
    Problem,
    ProblemCollector,
    excerpt,
    is_plain_key,
)
from viocli.inventory.render import RESERVED_PREFIX, known_variables, locked_variables
from viocli.inventory.source import load_yaml
from viocli.secrets.catalog import secret_names

VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class LoadedInventory:
    """A validated inventory with its custom.yml overrides and any warnings."""

    path: Path
    model: Inventory
    marks: Marks
    custom_path: Path | None = None
    custom_vars: dict[str, Any] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.model.name


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated/list down to the item type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        elif origin in (list, tuple):
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def _section_at(loc: Location) -> type[BaseModel] | None:
    """The model class describing the mapping at ``loc``."""
    current: Any = Inventory
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _data_loc(loc: tuple, data: Any) -> Location:
    """Keep only the parts of a pydantic location that exist in the data (drops validator tags)."""
    kept: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            kept.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str):
            kept.append(part)  # a missing key: name it anyway
            node = None
    return tuple(kept)


def _unknown_key(loc: Location, collector: ProblemCollector) -> None:
    """An unknown key, named only when it is a short plain name (the file may be anything)."""
    key = loc[-1]
    section = _section_at(loc[:-1])
    allowed = sorted(section.model_fields) if section else []
    if not is_plain_key(key):
        collector.error(loc[:-1], f"an unknown key; expected one of: {', '.join(allowed)}", value=False, at=loc)
        return
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        collector.error(loc, f"unknown key '{key}'; did you mean '{close[0]}'?", value=False)
    else:
        collector.error(loc, f"unknown key '{key}'; expected one of: {', '.join(allowed)}", value=False)


def _schema_problems(error: ValidationError, data: Any, collector: ProblemCollector) -> None:
    for item in error.errors(include_url=False):
        kind = item["type"]
        loc = _data_loc(item["loc"], data)
        if kind == "extra_forbidden":
            _unknown_key(loc, collector)
        elif kind == "missing":
            parent = loc[:-1]
            where = f" in {'.'.join(map(str, parent))}" if parent else ""
            collector.error(loc, f"required key is missing{where}", value=False, at=parent)
        else:
            # Pydantic names the model class ("... or instance of Vips"); the operator knows keys, not classes.
            message = re.sub(r" or instance of \w+", "", item["msg"].removeprefix("Value error, "))
            if "input" in item and kind not in ("value_error",) and not isinstance(item["input"], (dict, list)):
                message = f"{message} (got {excerpt(item['input'])})"
            collector.error(loc, message, value=True)


def multiline_values(value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """Where ``value`` (nested lists and mappings included) holds a string with a control character.

    A newline in a value would start a new line in the rendered config file that receives it (a
    section or option of its own); custom.yml and ``-e`` values are one line of text each.
    """
    if isinstance(value, str):
        found = CONTROL_RE.search(value)
        return [(path, f"{found.group()!r} at character {found.start() + 1}")] if found else []
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in multiline_values(item, (*path, key))]
    if isinstance(value, list):
        return [hit for index, item in enumerate(value) for hit in multiline_values(item, (*path, index))]
    return []


def _check_custom(loaded: LoadedInventory, data: Any, marks: Marks, path: Path) -> list[Problem]:
    collector = ProblemCollector(path, marks)
    if data is None:
        return []
    if not isinstance(data, dict):
        collector.error((), f"custom.yml must be a mapping of variable: value, not a {type(data).__name__}")
        return collector.problems
    locked = locked_variables(loaded.model)
    secrets = set(secret_names(loaded.model.vcenter.password_secret))
    known = known_variables(loaded.model)
    for key in data:
        if not isinstance(key, str) or not VARIABLE_RE.fullmatch(key):
            collector.error((), f"{excerpt(key)} is not a valid Ansible variable name", value=False, at=(key,))
        elif key.startswith(RESERVED_PREFIX):
            collector.error((key,), f"variables starting with '{RESERVED_PREFIX}' are reserved for viocli", value=False)
        elif key in locked:
            collector.error(
                (key,),
                f"'{key}' is set by the inventory ({loaded.path}); change it there, not in custom.yml",
                value=False,
            )
        elif key in secrets:
            collector.error(
                (key,),
                f"'{key}' is a secret; keep it out of custom.yml and use: sudo viocli secrets set {key}",
                value=False,
            )
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.85)
            if close:
                collector.warning((key,), f"no role uses '{key}'; did you mean '{close[0]}'?")
    for where, what in multiline_values({k: v for k, v in data.items() if isinstance(k, str)}):
        collector.error(
            where, f"contains a control character ({what}); every value must be a single line of printable text"
        )
    return collector.problems


def load_inventory(path: Path) -> LoadedInventory:
    """Load and fully validate an inventory file and the custom.yml it names.

    Raises :class:`InvalidInventory` (exit 2) listing every problem; writes nothing.
    """
    path = Path(path)
    data, marks = load_yaml(path, what="inventory")
    collector = ProblemCollector(path, marks)
    if data is None:
        line, column = marks.locate((), value=True)
        message = "the inventory is empty; start from inventory/ha.yml, compact.yml or tiny.yml"
        raise InvalidInventory(path, [Problem(path, (), message, line or 1, column or 1)])
    if not isinstance(data, dict):
        collector.error((), f"the inventory must be a mapping of keys, not a {type(data).__name__}")
        raise InvalidInventory(path, collector.problems)
    if not any(key in Inventory.model_fields for key in data):
        # Some other file (a typo in -i): say so once, without listing what it holds.
        collector.error(
            (),
            "this is not a viocli inventory: none of its top-level keys is an inventory key "
            f"({', '.join(Inventory.model_fields)}); start from inventory/ha.yml, compact.yml or tiny.yml",
        )
        raise InvalidInventory(path, collector.problems)
    try:
        model = Inventory.model_validate(data)
    except ValidationError as error:
        _schema_problems(error, data, collector)
        raise InvalidInventory(path, collector.problems) from None
    check_inventory(model, collector, path.parent)
    loaded = LoadedInventory(path=path, model=model, marks=marks)
    problems = list(collector.problems)
    if model.custom_file is not None and not collector.errors:
        custom_path = model.custom_file if model.custom_file.is_absolute() else path.parent / model.custom_file
        loaded.custom_path = custom_path
        try:
            custom_data, custom_marks = load_yaml(custom_path, what="custom.yml")
        except InvalidInventory as error:
            problems.extend(error.problems)
        else:
            problems.extend(_check_custom(loaded, custom_data, custom_marks, custom_path))
            loaded.custom_vars = dict(custom_data or {}) if isinstance(custom_data, dict) else {}
    if any(p.severity == "error" for p in problems):
        raise InvalidInventory(path, problems)
    loaded.warnings = problems
    return loaded
