"""Read a YAML file and remember where every key and value sits, for located error messages.

The reader is strict because its input may be any file an operator (or a typo) points it at:
only a regular file of at most :data:`MAX_BYTES` is read, without ever blocking on a FIFO or a
device; YAML anchors, aliases and merge keys are refused (an inventory never needs them, and
aliases are how a few hundred bytes expand into gigabytes); nesting deeper than :data:`MAX_DEPTH`
is refused. Messages never echo the file's content beyond short escaped excerpts.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from viocli.inventory.problems import InvalidInventory, Location, Marks, Problem, excerpt, is_plain_key
from viocli.logsetup import escape_controls

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
# PyYAML's own messages may quote a character or a tag from the file; keep them short.
REASON_LIMIT = 160
MERGE_TAG = "tag:yaml.org,2002:merge"


class UnreadableFile(Exception):
    """A file that must not or cannot be read.

    The message is a predicate for "the file ...", e.g. ``is a FIFO (named pipe), not a regular
    file``; it never contains the file's content. ``not_an_input_file`` is true when the path
    names something other than a small regular file (likely a wrong path).
    """

    def __init__(self, message: str, *, not_an_input_file: bool = False) -> None:
        super().__init__(message)
        self.not_an_input_file = not_an_input_file


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _check_stat(info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile(f"is {_kind(info.st_mode)}, not a regular file", not_an_input_file=True)
    if info.st_size > limit:
        raise UnreadableFile(f"has {info.st_size} bytes, more than the {_size(limit)} limit", not_an_input_file=True)


def read_regular_file(file: Path, *, limit: int = MAX_BYTES) -> bytes:
    """The bytes of ``file``, which must be a regular file of at most ``limit`` bytes.

    Checked before opening (a FIFO is never opened), opened non-blocking, checked again on the
    open descriptor (the path may have been swapped in between), and read up to ``limit + 1``
    bytes whatever its size claimed. Raises :class:`UnreadableFile` with a message that never
    contains the file's content.
    """
    try:
        _check_stat(os.stat(file), limit)
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnreadableFile("was not found") from None
    except OSError as error:
        raise UnreadableFile(_os_reason(error)) from None
    try:
        _check_stat(os.fstat(fd), limit)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise UnreadableFile(_os_reason(error)) from None
    finally:
        os.close(fd)
    if size > limit:
        raise UnreadableFile(f"has more than the {_size(limit)} limit", not_an_input_file=True)
    return b"".join(chunks)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"


def _os_reason(error: OSError) -> str:
    if error.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read: permission denied"
    return f"cannot be read: {error.strerror or error.__class__.__name__}"


class _Refused(yaml.MarkedYAMLError):
    """A construct the reader refuses on purpose (not a syntax error)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases, bounds nesting, and locates bad values."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                problem="YAML anchors and aliases (&name, *name) are not accepted here; write each value out in full",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    problem=f"the YAML nests more than {MAX_DEPTH} levels deep; is this the right file?",
                    problem_mark=event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as error:
            value = excerpt(node.value) if isinstance(node, yaml.ScalarNode) else "here"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value {value}: {_short(str(error))}", node.start_mark
            ) from None


def _short(text: str) -> str:
    text = escape_controls(text)
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT] + "…"


def _walk(node: yaml.Node, path: Location, marks: Marks, problems: list[Problem], file: Path) -> None:
    marks.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key_node.tag == MERGE_TAG:
                problems.append(
                    Problem(file, path, "merge keys (<<) are not accepted here; write the keys out", *position)
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(file, path, "a key must be a plain name, not a list or mapping", *position))
                continue
            key = key_node.value
            if key in seen:
                where = (*path, key) if is_plain_key(key) else path
                problems.append(Problem(file, where, f"duplicate key (first set on line {seen[key]})", *position))
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


def _marked_problem(file: Path, error: yaml.MarkedYAMLError, text: str, label: str) -> Problem:
    """A located problem for a PyYAML error.

    An unclosed quote or bracket is only noticed at the end of the file; it is reported where it
    was opened. When the parser noticed a problem away from the construct it was reading, the
    message says where that construct started.
    """
    problem, context = error.problem_mark, error.context_mark
    mark = problem or context
    reason = _short(" ".join(filter(None, [error.context, error.problem])))
    if problem is not None and context is not None and context.line != problem.line:
        if problem.index >= len(text):
            mark = context
            reason += " (it starts here and is not closed before the end of the file)"
        elif "block" not in (error.context or ""):
            reason += f" (it starts on line {context.line + 1}, column {context.column + 1})"
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    return Problem(file, (), f"{label}: {reason}" if label else reason, line, column)


def _read_text(file: Path, what: str) -> str:
    try:
        raw = read_regular_file(file)
    except UnreadableFile as error:
        hint = f"; give the path of the {what} file (YAML)" if error.not_an_input_file else ""
        raise InvalidInventory(file, [Problem(file, (), f"the {what} file {error}{hint}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"the {what} file is not UTF-8 text (byte {error.start + 1} is not valid UTF-8); save it as UTF-8"
        raise InvalidInventory(file, [Problem(file, (), message)]) from None


def _parse(file: Path, text: str) -> tuple[Any, Marks]:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        marks = Marks()
        problems: list[Problem] = []
        if root is not None:
            _walk(root, (), marks, problems, file)
        if problems:
            raise InvalidInventory(file, problems)
        try:
            data = loader.construct_document(root) if root is not None else None
        except yaml.MarkedYAMLError as error:  # e.g. a bad timestamp: composes, but does not construct
            raise InvalidInventory(file, [_marked_problem(file, error, text, "YAML error")]) from None
        return data, marks
    finally:
        loader.dispose()


def _reader_problem(file: Path, error: yaml.reader.ReaderError, text: str, what: str) -> Problem:
    """A located problem for a character YAML does not allow (NUL, most control characters)."""
    position = error.position
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    # PyYAML gives the code point for text input (bytes only when it decodes bytes itself).
    character = f"U+{error.character:04X}" if isinstance(error.character, int) else "a character"
    message = f"the {what} file contains {character}, which YAML does not allow; remove it"
    return Problem(file, (), message, line, column)


def load_yaml(file: Path, *, what: str = "inventory") -> tuple[Any, Marks]:
    """Parse ``file`` and return ``(data, marks)``.

    Raises :class:`InvalidInventory` for a file that is missing, not a regular file, over
    :data:`MAX_BYTES` or not UTF-8; a YAML syntax error (with file:line:column); an anchor, alias
    or merge key; nesting deeper than :data:`MAX_DEPTH`; or a duplicate key, which PyYAML would
    otherwise silently overwrite.
    """
    text = _read_text(file, what)
    try:
        return _parse(file, text)
    except _Refused as error:
        raise InvalidInventory(file, [_marked_problem(file, error, text, "")]) from None
    except yaml.MarkedYAMLError as error:
        raise InvalidInventory(file, [_marked_problem(file, error, text, "YAML syntax error")]) from None
    except yaml.reader.ReaderError as error:
        raise InvalidInventory(file, [_reader_problem(file, error, text, what)]) from None
    except yaml.YAMLError as error:
        message = f"YAML syntax error: {_short(str(error))}"
        raise InvalidInventory(file, [Problem(file, (), message)]) from None
    except RecursionError:
        message = f"the YAML nests too deeply to read (the limit is {MAX_DEPTH} levels); is this the right file?"
        raise InvalidInventory(file, [Problem(file, (), message)]) from None
