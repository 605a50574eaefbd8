"""Safe YAML loading that remembers the line of every value and rejects duplicate keys."""
from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import ErrorCollector, Path, SpecError, FlowValidationError


class _Constructor(yaml.SafeLoader):
    """SafeLoader: plain data only, no Python objects; booleans as YAML 1.2 has them (`off` is text)."""


_Constructor.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Constructor.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(source: str) -> tuple[Any, dict[Path, int], list[SpecError]]:
    """Parse `source` safely; return (data, lines by path, duplicate-key errors).

    Raises FlowValidationError for YAML syntax errors, with the line.
    """
    loader = _Constructor(source)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise FlowValidationError([SpecError((), f"invalid YAML: {problem}", line)]) from None
    except yaml.YAMLError as exc:
        raise FlowValidationError([SpecError((), f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    errors: list[SpecError] = []
    if node is None:
        return None, lines, errors
    data = _build(node, (), loader, lines, errors)
    return data, lines, errors


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap"}


def _build(node: yaml.Node, path: Path, loader: _Constructor, lines: dict, errors: list) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise FlowValidationError([SpecError(path, f"invalid YAML: tag '{node.tag}' is not allowed", lines[path])])
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                errors.append(SpecError(path, "a mapping key must be a plain value", key_node.start_mark.line + 1))
                continue
            if isinstance(key, (int, float, bool)) or key is None:
                key = _scalar_text(key_node)
            if key in result:
                errors.append(SpecError(path + (key,), f"duplicate key '{key}'", key_node.start_mark.line + 1))
                continue
            result[key] = _build(value_node, path + (key,), loader, lines, errors)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), loader, lines, errors) for i, item in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value  # dates stay text: JSON-safe, parsed by whoever reads them
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # an unknown tag such as !!python/object: SafeLoader refuses it
        raise FlowValidationError([SpecError(path, f"invalid YAML: {getattr(exc, 'problem', None) or exc}", lines[path])]) from None


def _scalar_text(node: yaml.Node) -> str:
    """Map keys are names: `1:` or `true:` (Switch cases) stay the text the user wrote."""
    return str(node.value) if isinstance(node, yaml.ScalarNode) else str(node)


__all__ = ["load_yaml", "ErrorCollector"]
