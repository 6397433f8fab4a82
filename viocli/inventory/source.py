"""Read a YAML file and remember where every key and value sits, for located error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from viocli.inventory.problems import InvalidInventory, Location, Marks, Problem


def _walk(node: yaml.Node, path: Location, marks: Marks, problems: list[Problem], file: Path) -> None:
    marks.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                problems.append(
                    Problem(file, (*path, key), f"duplicate key (first set on line {seen[key]})", *position)
                )
                continue
            seen[key] = position[0]
            child = (*path, key)
            marks.keys[child] = position
            _walk(value_node, child, marks, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            marks.keys[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
            _walk(item, child, marks, problems, file)


def load_yaml(file: Path, *, what: str = "inventory") -> tuple[Any, Marks]:
    """Parse ``file`` and return ``(data, marks)``.

    Raises :class:`InvalidInventory` for an unreadable file, a YAML syntax error (with
    file:line:column) or a duplicate key, which PyYAML would otherwise silently overwrite.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInventory(file, [Problem(file, (), f"{what} file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInventory(file, [Problem(file, (), f"cannot read {what} file: {error}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = " ".join(filter(None, [error.context, error.problem]))
        raise InvalidInventory(file, [Problem(file, (), f"YAML syntax error: {reason}", line, column)]) from None
    except yaml.YAMLError as error:
        raise InvalidInventory(file, [Problem(file, (), f"YAML syntax error: {error}")]) from None
    marks = Marks()
    problems: list[Problem] = []
    if root is not None:
        _walk(root, (), marks, problems, file)
    if problems:
        raise InvalidInventory(file, problems)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:  # e.g. a bad timestamp: composes, but does not construct
        raise InvalidInventory(file, [Problem(file, (), f"YAML error: {error}")]) from None
    return data, marks
