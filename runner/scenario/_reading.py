"""Reading a scenario file: YAML with each key's line, bounded against hostile input, checked
against the models; every refusal is one line naming the file, line, field and value."""

from __future__ import annotations

import math
import os
import stat
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from runner.errors import BadInput
from runner.scenario._errors import (
    explain,
    field_path,
    one_line,
)
from runner.scenario._models import Scenario

# --- reading YAML with line numbers ----------------------------------------------------------

# A scenario is a hand-written config: the shipped ones are under 2 KB. 1 MB leaves room for
# bodies far past what the target takes (a DynamoDB item is at most 400 KB), and refuses, before
# parsing, a file that would be parsed for seconds and copied into results.json and the report.
MAX_SCENARIO_BYTES = 1_000_000
# Aliases share one parsed value, but every request serialises the value in full: the
# billion-laughs file is a few hundred bytes and expands to gigabytes. Bound what the document
# expands to (characters of scalars plus one per node). A file without aliases expands to
# about its own size, so four times the file limit never refuses one.
MAX_EXPANDED_SIZE = 4 * MAX_SCENARIO_BYTES
# DynamoDB nests attributes at most 32 levels (its documented attribute limits); a body that
# puts such an item sits a few levels below the scenario's top. 64 is twice that, and far
# below Python's recursion limit, which deeper YAML hit (RecursionError, exit 3).
MAX_DEPTH = 64
# DynamoDB numbers hold 38 significant digits; 100 characters leaves room for a sign, an
# exponent, underscores and a deliberately out-of-range test value, and stays far below
# Python's 4300-digit limit on converting text to int (a ValueError, exit 3, before).
MAX_NUMBER_CHARS = 100
_JSON_TAGS = {
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")
}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item, and takes
    only what JSON can say: strings, numbers, booleans, null, lists and string-keyed mappings,
    bounded in depth and in what aliases expand to."""

    # Dates stay text: a date value is not JSON, and a body sends what the file says.
    yaml_implicit_resolvers = {  # noqa: RUF012 (PyYAML's own class attribute)
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self.name = path
        self.at: list[int | str] = []  # the field being composed or constructed
        self.sizes: dict[int, int] = {}  # id(node) -> expanded size, once composed

    def fail(self, node_or_mark: Any, message: str) -> BadInput:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        field = field_path(tuple(self.at))
        return BadInput(one_line(f"{self.name}:{mark.line + 1}: {field}: {message}"))

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]
            target = super().compose_node(parent, index)
            if id(target) not in self.sizes:  # its anchor is still open: the alias is inside it
                raise self.fail(event, f"alias *{event.anchor} is inside its own anchor")
            return target
        part: int | str | None = None
        if isinstance(index, int):
            part = index
        elif isinstance(index, yaml.ScalarNode):
            part = str(index.value)
        elif parent is not None:
            part = "(a key)"
        if part is not None:
            self.at.append(part)
        if len(self.at) > MAX_DEPTH:
            where = self.peek_event()  # type: ignore[no-untyped-call]
            raise self.fail(where, f"nested more than {MAX_DEPTH} levels deep")
        node: Any = super().compose_node(parent, index)
        if isinstance(node, yaml.ScalarNode):
            size = 1 + len(node.value)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self.sizes[id(child)] for child in node.value)
        else:
            size = 1 + sum(self.sizes[id(k)] + self.sizes[id(v)] for k, v in node.value)
        if size > MAX_EXPANDED_SIZE:
            raise self.fail(
                node,
                f"its aliases expand to more than {MAX_EXPANDED_SIZE:,} characters "
                "(a YAML alias bomb?): write the value out or use fewer aliases",
            )
        self.sizes[id(node)] = size
        if part is not None:
            self.at.pop()
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        if node.tag not in _JSON_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise self.fail(
                node,
                f"the YAML tag {tag} is not allowed: a scenario holds strings, numbers, "
                "booleans, null, lists and mappings",
            )
        return super().construct_object(node, deep=deep)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise loader.fail(key_node, "a key must be a plain string, not a list or a mapping")
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            kind = "null" if key is None else "a boolean" if isinstance(key, bool) else "a number"
            raise loader.fail(key_node, f"the key {key_node.value!r} is read as {kind}: quote it")
        loader.at.append(key)
        if key in mapping:
            raise loader.fail(key_node, "appears twice")
        mapping[key] = loader.construct_object(value_node, deep=True)
        loader.at.pop()
        lines[key] = key_node.start_mark.line + 1
    return _LinedDict(mapping, lines, node.start_mark.line + 1)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    items = []
    for index, child in enumerate(node.value):
        loader.at.append(index)
        items.append(loader.construct_object(child, deep=True))
        loader.at.pop()
    return _LinedList(items, [child.start_mark.line + 1 for child in node.value])


def _construct_number(loader: _LineLoader, node: yaml.ScalarNode) -> int | float:
    if len(node.value) > MAX_NUMBER_CHARS:
        raise loader.fail(
            node, f"a number of {len(node.value)} characters (at most {MAX_NUMBER_CHARS})"
        )
    if node.tag.endswith(":int"):
        return int(loader.construct_yaml_int(node))
    number = float(loader.construct_yaml_float(node))
    if not math.isfinite(number):
        raise loader.fail(node, f"must be a finite number, got {node.value}")
    return number


class _LinedDict(dict[Any, Any]):
    def __init__(self, data: dict[Any, Any], lines: dict[Any, int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


class _LinedList(list[Any]):
    def __init__(self, data: list[Any], lines: list[int]) -> None:
        super().__init__(data)
        self.lines = lines


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_number)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _construct_number)


def _line_of(document: Any, location: tuple[int | str, ...]) -> int:
    """The line of the deepest part of `location` that exists in the document."""
    line = getattr(document, "line", 1)
    node = document
    for part in location:
        if isinstance(node, _LinedDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, _LinedList) and isinstance(part, int) and part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


def parse_scenario(text: str, *, path: str = "<scenario>") -> Scenario:
    """A Scenario from YAML text; BadInput naming file, line and field on any problem."""
    if len(text) > MAX_SCENARIO_BYTES:
        raise BadInput(f"{path}:1: is {len(text):,} characters; {_TOO_BIG}")
    loader: _LineLoader | None = None
    try:
        loader = _LineLoader(text, path)
        document = loader.get_single_data()
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (e.g. NUL)
        line = text.count("\n", 0, exc.position) + 1
        raise BadInput(
            f"{path}:{line}: not valid YAML: the character {chr(exc.character)!r} is not allowed"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(str(exc.problem or exc).split())
        raise BadInput(f"{path}:{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}:1: not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(document, dict):
        raise BadInput(f"{path}:1: a scenario is a mapping of keys (name, sweep, load, ...)")
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        messages = explain(exc, path=path, line_of=partial(_line_of, document))
        raise BadInput("\n".join(messages)) from None


_TOO_BIG = f"a scenario is at most {MAX_SCENARIO_BYTES:,} bytes (MAX_SCENARIO_BYTES)"
_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_scenario_text(path: str | Path) -> str:
    """A scenario file's text, read only if it is a regular file of sane size."""
    file = Path(path)
    try:
        # Non-blocking: opening a FIFO for reading would wait for a writer for ever.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BadInput(f"{file}: no such scenario file") from None
    except OSError as exc:
        raise BadInput(f"{file}: cannot read it: {exc.strerror}") from None
    try:
        info = os.fstat(fd)  # of what was opened, not of what the name points to now
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise BadInput(f"{file}: is {kind}, not a scenario file")
        if info.st_size > MAX_SCENARIO_BYTES:
            raise BadInput(f"{file}: is {info.st_size:,} bytes; {_TOO_BIG}")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SCENARIO_BYTES:  # bounded even if the file grows while read
            chunk = os.read(fd, MAX_SCENARIO_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SCENARIO_BYTES:
            raise BadInput(f"{file}: is over {MAX_SCENARIO_BYTES:,} bytes; {_TOO_BIG}")
    except OSError as exc:
        raise BadInput(f"{file}: cannot read it: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BadInput(
            f"{file}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        ) from None


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_scenario_text(path), path=str(path))


# The target fields a command-line flag may set, per kind.
