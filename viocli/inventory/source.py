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
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(file, path, "a key must be a plain name, not a list or mapping", *position))
                continue
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


class _Loader(yaml.SafeLoader):
    """SafeLoader whose value errors (``2024-02-30``, ``!!int abc``) name the value and where it is."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as error:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value {node.value!r}: {error}", node.start_mark
            ) from None


def _marked_problem(file: Path, error: yaml.MarkedYAMLError, text: str, label: str) -> Problem:
    """A located problem for a PyYAML error.

    An unclosed quote or bracket is only noticed at the end of the file; it is reported where it
    was opened. When the parser noticed a problem away from the construct it was reading, the
    message says where that construct started.
    """
    problem, context = error.problem_mark, error.context_mark
    mark = problem or context
    reason = " ".join(filter(None, [error.context, error.problem]))
    if problem is not None and context is not None and context.line != problem.line:
        if problem.index >= len(text):
            mark = context
            reason += " (it starts here and is not closed before the end of the file)"
        elif "block" not in (error.context or ""):
            reason += f" (it starts on line {context.line + 1}, column {context.column + 1})"
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    return Problem(file, (), f"{label}: {reason}", line, column)


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
        raise InvalidInventory(file, [_marked_problem(file, error, text, "YAML syntax error")]) from None
    except yaml.YAMLError as error:
        raise InvalidInventory(file, [Problem(file, (), f"YAML syntax error: {error}")]) from None
    marks = Marks()
    problems: list[Problem] = []
    if root is not None:
        _walk(root, (), marks, problems, file)
    if problems:
        raise InvalidInventory(file, problems)
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as error:  # e.g. a bad timestamp: composes, but does not construct
        raise InvalidInventory(file, [_marked_problem(file, error, text, "YAML error")]) from None
    except yaml.YAMLError as error:
        raise InvalidInventory(file, [Problem(file, (), f"YAML error: {error}")]) from None
    return data, marks
