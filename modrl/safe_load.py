"""Parsing limits, in one place: every YAML and JSON document modrl reads goes through this module.

A file shaped to hurt must give one clear error, never a hang, a traceback or a silent surprise. The policy:

- **Size.** A document is refused above a byte limit before it is parsed (:data:`MAX_YAML_BYTES` for configs,
  callers pass their own limit for JSON, :data:`MAX_JSON_BYTES` by default).
- **Nesting.** Deeper than :data:`MAX_DEPTH` levels is refused (YAML while composing, before anything is built;
  JSON after parsing, and a ``RecursionError`` of the parser itself is turned into the same error).
- **YAML aliases are counted before expansion.** The node count of the document *with every alias expanded* is
  computed on the composed graph (linear in its size, memoised per node) and refused above
  :data:`MAX_YAML_NODES`, so a "billion laughs" file fails in microseconds instead of expanding.
- **YAML numbers.** YAML 1.1's base-60 numbers (``seed: 1:30`` would be 90) and leading-zero octal integers
  (``017`` would be 15) are refused with the literal named; quote them or write the decimal value.
- **Encoding.** Text must be UTF-8: a UTF-16/UTF-32 byte-order mark, a NUL byte (binary) or an invalid UTF-8 byte
  is refused naming the offset.
- **Messages.** Values quoted in error messages go through :func:`short_repr` (bounded, whatever the value).

Every refusal is an :class:`InputError` (a ``ValueError``) whose message starts with the file (or ``where``).
"""

from __future__ import annotations

import json
import re
import reprlib
import typing
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Deepest nesting of mappings/lists accepted in any YAML or JSON document.
MAX_DEPTH = 64
#: Largest YAML document (a config, a sweep file) in bytes.
MAX_YAML_BYTES = 1 << 20
#: Most nodes a YAML document may hold once every alias is expanded.
MAX_YAML_NODES = 100_000
#: Default largest JSON document in bytes (checkpoint members pass their own limit).
MAX_JSON_BYTES = 64 << 20
#: Longest quoted value in an error message.
MAX_MESSAGE_VALUE = 120


class InputError(ValueError):
    """A document breaks a parsing limit, is not valid UTF-8 or not valid YAML/JSON; the message names the file."""


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 3, 8, 8, 8
_repr.maxset, _repr.maxstring, _repr.maxother, _repr.maxlong = 8, MAX_MESSAGE_VALUE, MAX_MESSAGE_VALUE, 40


def short_repr(value: Any) -> str:
    """``repr(value)`` bounded in length and in work (nested or huge lists are elided with ``...``)."""
    text = _repr.repr(value)
    return text if len(text) <= 2 * MAX_MESSAGE_VALUE else text[: 2 * MAX_MESSAGE_VALUE] + "..."


def decode_text(data: bytes, where: str) -> str:
    """``data`` as UTF-8 text (a UTF-8 byte-order mark is dropped), or :class:`InputError` saying what it is."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{where}: encoded as UTF-16 or UTF-32 (byte-order mark); save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(
            f"{where}: NUL byte at offset {nul} (binary, or UTF-16/32 without a byte-order mark); expected UTF-8 text"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


def read_text(path: Path | str, *, max_bytes: int) -> str:
    """A file's UTF-8 text after a size check (``OSError`` for a missing or unreadable file is left to the caller)."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{path}: larger than the limit of {max_bytes} bytes")
    return decode_text(data, str(path))


# ------------------------------------------------------------------------------------------------------------ JSON


def loads_json(data: bytes | str, where: str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document under the limits above.

    Raises:
        InputError: Too large, not UTF-8, not JSON, or nested deeper than ``max_depth``.
    """
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise InputError(f"{where}: {size} bytes exceeds the limit of {max_bytes} bytes")
    text = decode_text(data, where) if isinstance(data, bytes) else data
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputError(f"{where}: nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc}") from None
    if _depth_exceeds(value, max_depth):
        raise InputError(f"{where}: nested deeper than {max_depth} levels")
    return value


def read_json(path: Path | str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """:func:`loads_json` of a file's bytes (``OSError`` is left to the caller)."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    return loads_json(data, str(path), max_bytes=max_bytes, max_depth=max_depth)


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether parsed JSON nests deeper than ``max_depth`` (iterative: no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


# ------------------------------------------------------------------------------------------------------------ YAML

_BASE_60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_OCTAL_11 = re.compile(r"[-+]?0[0-7_]+")


class LimitedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the limits of this module: nesting depth and alias-expanded node count bounded
    while composing (before anything is constructed), base-60 and YAML 1.1 octal numbers refused, a key repeated
    in one mapping refused (plain ``safe_load`` keeps the last one)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                )
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None:
            count = _expanded_size(node)
            if count > MAX_YAML_NODES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"{count} nodes once aliases are expanded exceeds the limit of {MAX_YAML_NODES} (an alias bomb?)",
                    node.start_mark,
                )
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {short_repr(key)}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        _refuse_yaml11_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        _refuse_yaml11_number(node)
        return super().construct_yaml_float(node)


LimitedSafeLoader.add_constructor("tag:yaml.org,2002:int", LimitedSafeLoader.construct_yaml_int)
LimitedSafeLoader.add_constructor("tag:yaml.org,2002:float", LimitedSafeLoader.construct_yaml_float)


def _refuse_yaml11_number(node: ScalarNode) -> None:
    value = str(node.value)
    if _BASE_60.fullmatch(value):
        kind = "a YAML 1.1 base-60 number"
    elif _OCTAL_11.fullmatch(value):
        kind = "a YAML 1.1 octal number"
    else:
        return
    raise yaml.constructor.ConstructorError(
        None, None, f"{value!r} is {kind}; quote it, or write the decimal value", node.start_mark
    )


def _expanded_size(root: Node) -> int:
    """Nodes of the document with every alias expanded, computed without expanding (memoised per node object)."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if not children_done:
            if id(node) in visiting:  # depth-first: a node met again while its subtree is open is its own ancestor
                raise yaml.composer.ComposerError(None, None, "an alias refers to itself (recursive)", node.start_mark)
            visiting.add(id(node))
        children = _children(node)
        if children_done or not children:
            sizes[id(node)] = min(1 + sum(sizes.get(id(c), 0) for c in children), MAX_YAML_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def loads_yaml(text: str, where: str) -> Any:
    """Parse one YAML document with :class:`LimitedSafeLoader`.

    Raises:
        InputError: Breaks a limit or is not valid (safe) YAML; the message is on one line.
    """
    if len(text) > MAX_YAML_BYTES:
        raise InputError(f"{where}: larger than the limit of {MAX_YAML_BYTES} bytes")
    try:
        loader = LimitedSafeLoader(text)  # PyYAML's reader refuses control characters here, before parsing
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).replace('"<unicode string>"', where).split())
        raise InputError(f"{where}: not valid (safe) YAML: {reason}") from None
    loader.name = where  # PyYAML's marks name the file: "in <where>, line 3, column 7"
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())  # PyYAML's messages span lines: one line for the CLI
        raise InputError(f"{where}: not valid (safe) YAML: {reason}") from None
    except RecursionError:
        raise InputError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def read_yaml(path: Path | str) -> Any:
    """:func:`loads_yaml` of a file, after the size and encoding checks (``OSError`` is left to the caller)."""
    path = Path(path)
    return loads_yaml(read_text(path, max_bytes=MAX_YAML_BYTES), str(path))
