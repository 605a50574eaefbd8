"""Safe YAML loading that remembers the line of every value, rejects duplicate keys, and keeps within size limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import yaml
from yaml.composer import ComposerError

from .errors import ErrorCollector, FlowValidationError, Path, SpecError


@dataclass(frozen=True)
class YamlLimits:
    """What one source may hold: past these the loader refuses it, rather than spend minutes or memory on it."""

    max_bytes: int = 1_000_000
    max_depth: int = 64  # nested lists and maps; the composer and the checks recurse once per level
    max_alias_values: int = 100_000  # values that aliases add, as a "billion laughs" bomb does


LIMITS = YamlLimits()


class _LimitedComposer(yaml.composer.Composer):
    """A Composer that refuses deep nesting, an alias used inside its own anchor (a value that would contain
    itself) and aliases that expand to too many values, each at the line where it happens. It composes in
    Python, from the events of libyaml's parser when PyYAML has it (a small flow then loads in a third of
    the time), else of PyYAML's."""

    limits: YamlLimits = LIMITS
    peek_event: Callable[[], yaml.Event]  # the parser's (PyYAML's or libyaml's), later in the MRO

    def compose_document(self) -> yaml.Node | None:
        self._depth, self._expanded = 0, 0
        self._open_anchors: set[str] = set()
        self._sizes: list[int] = [0]  # values in the node being composed, one entry per open node
        self._anchor_sizes: dict[str, int] = {}
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            return self._compose_alias(event, parent, index)
        nests = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        self._depth += nests
        if self._depth > self.limits.max_depth:
            raise ComposerError(None, None, f"nesting deeper than {self.limits.max_depth} levels", _mark(event))
        anchor: str | None = getattr(event, "anchor", None)  # node events have one (maybe None), others none
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._sizes.append(0)
        node = super().compose_node(parent, index)
        size = 1 + self._sizes.pop()
        self._sizes[-1] += size
        if anchor is not None:
            self._open_anchors.discard(anchor)
            self._anchor_sizes[anchor] = size
        self._depth -= nests
        return node

    def _compose_alias(self, event: yaml.AliasEvent, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        anchor = event.anchor or ""
        if anchor in self._open_anchors:
            raise ComposerError(None, None, f"alias *{anchor} is used inside its own anchor &{anchor}", _mark(event))
        node = super().compose_node(parent, index)  # raises on an undefined alias
        size = self._anchor_sizes[anchor]
        self._sizes[-1] += size
        self._expanded += size
        if self._expanded > self.limits.max_alias_values:
            raise ComposerError(
                None, None, f"aliases expand to more than {self.limits.max_alias_values} values", _mark(event)
            )
        return node


def _mark(event: yaml.Event) -> yaml.error.Mark | None:
    """Where an event starts (the C parser's marks are another class with the same fields)."""
    mark = event.start_mark
    return None if mark is None else yaml.error.Mark(mark.name, mark.index, mark.line, mark.column, None, 0)


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Parsing(yaml.composer.Composer, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's scanner and parser, composed in Python: Composer comes before CParser, whose own
        composing (in C) would bypass _LimitedComposer."""

        def __init__(self, stream: str) -> None:
            _check_characters(stream)
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

else:  # pragma: no cover (PyYAML's wheels carry libyaml)
    _Parsing = yaml.SafeLoader  # type: ignore[misc, assignment]


# libyaml's words where they say less than they could.
_PLAINER = {
    "found invalid Unicode character escape code": (
        "an escape that is no character (a lone surrogate like \\ud800, or past \\U0010FFFF)"
    )
}


def _check_characters(text: str) -> None:
    """What PyYAML's Reader refuses, refused the same way (libyaml's rules differ at the edges)."""
    found = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if found:
        raise yaml.reader.ReaderError(
            "<unicode string>", found.start(), ord(found.group()), "unicode", "special characters are not allowed"
        )


class _Constructor(_LimitedComposer, _Parsing):
    """SafeLoader: plain data only, no Python objects; booleans as YAML 1.2 has them (`off` is text)."""


_Constructor.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Constructor.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _PlainLoader(_LimitedComposer, _Parsing):
    """yaml.safe_load's loader within the limits, for values (YAML inputs) rather than flows."""


def configure(limits: YamlLimits) -> None:
    """Set the deployment's limits (Django's app start reads TERN_FLOW_SOURCE_MAX_BYTES)."""
    global LIMITS
    LIMITS = limits


def load_yaml(source: str, limits: YamlLimits | None = None) -> tuple[Any, dict[Path, int], list[SpecError]]:
    """Parse `source` safely; return (data, lines by path, duplicate-key errors).

    Raises FlowValidationError for YAML syntax errors and sources past `limits`, with the line.
    """
    limits = limits or LIMITS
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise FlowValidationError(
            [
                SpecError(
                    (),
                    f"the source is {size:,} bytes, more than the {limits.max_bytes:,} a flow may have "
                    "(TERN_FLOW_SOURCE_MAX_BYTES)",
                )
            ]
        )
    try:
        loader = _Constructor(source)  # checks the characters at once
    except yaml.reader.ReaderError as exc:
        line = source.count("\n", 0, exc.position) + 1
        raise _refused((), f"the character U+{exc.character:04X} is not allowed", line) from None
    loader.limits = limits
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {(): 1}, []
        lines: dict[Path, int] = {}
        errors: list[SpecError] = []
        data = _build(node, (), loader, lines, errors)
        return data, lines, errors
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = _PLAINER.get(exc.problem or "", exc.problem or str(exc))
        raise _refused((), problem, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise _refused((), str(exc), None) from None
    finally:
        loader.dispose()


def load_plain_yaml(text: str, limits: YamlLimits | None = None) -> Any:
    """yaml.safe_load within `limits`; raises yaml.YAMLError, or ValueError for a value Python cannot hold."""
    limits = limits or LIMITS
    if len(text) > limits.max_bytes:
        raise yaml.YAMLError(f"more than {limits.max_bytes} characters")
    loader = _PlainLoader(text)
    loader.limits = limits
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap"}
_SCALAR_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


_MERGE = "tag:yaml.org,2002:merge"


def _refused(path: Path, problem: str, line: int | None) -> FlowValidationError:
    return FlowValidationError([SpecError(path, f"invalid YAML: {problem}", line)])


def _build(node: yaml.Node, path: Path, loader: _Constructor, lines: dict[Path, int], errors: list[SpecError]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise _refused(path, f"tag '{_short(node.tag)}' is not allowed", lines[path])
    if isinstance(node, yaml.MappingNode):
        written = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
        try:
            loader.flatten_mapping(node)  # resolves `<<` merge keys: the merged pairs come first
        except yaml.MarkedYAMLError as exc:  # `<<:` followed by something else than maps
            raise _refused(path, exc.problem or str(exc), lines[path]) from None
        first_written = len(node.value) - written
        chosen: dict[str, tuple[yaml.Node, int]] = {}  # key -> (value node, line of its key)
        seen_written: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                errors.append(SpecError(path, "a mapping key must be a plain value", key_line))
                continue
            key = _scalar(key_node, path, loader)
            if not isinstance(key, str):
                key = _scalar_text(key_node)
            if index >= first_written:  # written in this mapping: overrides a merged key, never another
                if key in seen_written:
                    errors.append(SpecError(path + (key,), f"duplicate key '{key}'", key_line))
                    continue
                seen_written.add(key)
                chosen[key] = (value_node, key_line)
            elif key not in chosen:  # merged: the first mapping merged that has it wins (YAML's merge rule)
                chosen[key] = (value_node, key_line)
        result: dict[Any, Any] = {}
        for key, (value_node, key_line) in chosen.items():
            result[key] = _build(value_node, path + (key,), loader, lines, errors)
            lines[path + (key,)] = key_line
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), loader, lines, errors) for i, item in enumerate(node.value)]
    return _scalar(cast(yaml.ScalarNode, node), path, loader)  # neither a map nor a list


def _scalar(node: yaml.ScalarNode, path: Path, loader: _Constructor) -> Any:
    line = node.start_mark.line + 1
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value  # dates stay text: JSON-safe, parsed by whoever reads them
    if node.tag not in _SCALAR_TAGS:  # !!binary (bytes are not JSON), !!python/..., a custom `!Ref`
        raise _refused(path, f"tag '{_short(node.tag)}' is not allowed", line)
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise _refused(path, f"the number {node.value[:20]}... is too large", line) from None
    if isinstance(value, str) and _LONE_SURROGATE.search(value):  # from an escape such as "\ud800"
        raise _refused(path, "a lone surrogate (like \\ud800) is not a character", line)
    if isinstance(value, str) and "\0" in value:  # from an escape "\0": PostgreSQL stores no NUL in text
        raise _refused(path, "a NUL character (\\0) is not allowed", line)
    return value


def _short(tag: str) -> str:
    """`tag:yaml.org,2002:python/object` as the user wrote it: `!!python/object`."""
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


def _scalar_text(node: yaml.Node) -> str:
    """Map keys are names: `1:` or `true:` (Switch cases) stay the text the user wrote."""
    return str(node.value)


__all__ = ["LIMITS", "ErrorCollector", "YamlLimits", "configure", "load_plain_yaml", "load_yaml"]
