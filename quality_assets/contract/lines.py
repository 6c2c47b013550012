"""YAML with line numbers: every mapping remembers the line of each key, so that every problem
is reported with the file and the line to fix, all at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


class LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> dict:
    mapping = LinedDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"unsupported mapping key {key!r}", key_node.start_mark
            )
        key = str(key)
        if key in mapping:
            continue  # reported by duplicate_keys; the first one counts
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    mapping.line = node.start_mark.line + 1
    return mapping


class LinedDict(dict):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines: dict[str, int] = {}
        self.line: int | None = None


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def duplicate_keys(node: yaml.Node, path: tuple[str, ...] = (), seen: set | None = None) -> Iterator[tuple[int, str, str, int]]:
    """(line, where, key, line of the first one) for every repeated key in the YAML node tree."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in first:
                yield key_node.start_mark.line + 1, _where((*path, key)), key, first[key]
            elif key is not None:
                first[key] = key_node.start_mark.line + 1
            yield from duplicate_keys(value_node, (*path, str(key)), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value, start=1):
            yield from duplicate_keys(item, (*path, f"[{index}]"), seen)


def _where(path: tuple[str, ...]) -> str:
    """('datasets', 'orders', 'rules', '[2]') -> "dataset 'orders', rules[2]", as the checks name places."""
    head, rest = "", path
    if len(path) >= 2 and path[0] == "datasets":
        head, rest = f"dataset '{path[1]}'", path[2:]
    tail = ""
    for part in rest:
        tail += part if part.startswith("[") or not tail else f".{part}"
    return ", ".join(p for p in (head, tail) if p) or "contract"


class Problems:
    def __init__(self, path: Path):
        self.path = path
        self.items: list[str] = []

    def add(self, line: int | None, where: str, message: str) -> None:
        location = f"{self.path}:{line}" if line else str(self.path)
        self.items.append(f"{location}: {where}: {message}")


def line_at(mapping: Any, key: str | None = None) -> int | None:
    if isinstance(mapping, LinedDict):
        if key is not None and key in mapping.lines:
            return mapping.lines[key]
        return mapping.line
    return None


def yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """The line to fix and what is wrong. A quote or bracket left open is only noticed where the
    scanner gives up (often many lines later): the line to fix is where it was opened."""
    problem_mark, context_mark = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    problem, context = getattr(exc, "problem", None) or str(exc), getattr(exc, "context", None) or ""
    quoted = _multiline_quote(text)
    if quoted is not None and (problem_mark is None or quoted[0] <= problem_mark.line + 1):
        return quoted[0], (f"a quoted value opened on line {quoted[0]} runs on to line {quoted[1]}: is its closing "
                           f"quote missing? (the parser then found: {problem})")
    left_open = context_mark is not None and ("quoted scalar" in context or "flow" in context)
    if left_open and (problem_mark is None or problem_mark.line != context_mark.line):
        where = f" on line {problem_mark.line + 1}" if problem_mark is not None else ""
        what = context.removeprefix("while parsing ").removeprefix("while scanning ")
        return context_mark.line + 1, f"{what} opened here is still open{where} ({problem})"
    mark = problem_mark or context_mark
    return (mark.line + 1 if mark else None), problem


def _multiline_quote(text: str) -> tuple[int, int] | None:
    """(first line, last line) of the first quoted scalar spanning lines: legal YAML, but in a
    contract almost always a quote left open."""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken) and not token.plain and token.end_mark.line > token.start_mark.line:
                return token.start_mark.line + 1, token.end_mark.line + 1
    except yaml.YAMLError:
        pass
    return None
