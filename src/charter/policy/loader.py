"""Read a policy file and report every mistake at its place: `FILE:LINE:COLUMN: message`.

YAML is composed into nodes first, so that each value keeps the line and column it came
from; the nodes become plain Python values for pydantic, and every error that pydantic or
the reference checks report is mapped back to the node it is about.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from charter.policy.references import Reference, check_references
from charter.policy.schema import Policy

try:
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - libyaml is in every wheel of PyYAML we pin
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class PolicyProblem:
    """One located mistake in a policy file."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyError(Exception):
    """The policy file could not be loaded; `problems` says where and why."""

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class _Marks:
    """Where each value (and each mapping key) of the document starts, 1-based."""

    values: dict[PathKey, tuple[int, int]]
    keys: dict[PathKey, tuple[int, int]]

    def locate(self, path: PathKey, *, key: bool = False) -> tuple[int, int]:
        if key and path in self.keys:
            return self.keys[path]
        # A missing key has no place of its own: point at the nearest enclosing value.
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return (1, 1)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns composed YAML nodes into Python values, recording marks and duplicate keys."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks = _Marks(values={}, keys={})
        self.problems: list[PolicyProblem] = []
        self._scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: PathKey = ()) -> Any:
        self.marks.values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalars.construct_object(key_node)
                if not isinstance(key, str):
                    self._problem(key_node, f"keys must be text, got {key!r}")
                    continue
                if key in result:
                    first_line = self.marks.keys[(*path, key)][0]
                    self._problem(key_node, f"duplicate key '{key}' (first given on line {first_line})")
                    continue
                self.marks.keys[(*path, key)] = _mark(key_node)
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalars.construct_object(node)

    def _problem(self, node: yaml.Node, message: str) -> None:
        line, column = _mark(node)
        self.problems.append(PolicyProblem(self.file, line, column, message))


def dotted(path: Iterable[str | int]) -> str:
    """`("sections", 2, "heading")` -> `sections[2].heading`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _allowed_keys(model: type[BaseModel], path: PathKey) -> list[str]:
    """The keys a mapping at `path` may hold, for a "did you mean" hint."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) else None
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return list(current.model_fields) if isinstance(current, type) else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _validation_problems(file: str, error: ValidationError, marks: _Marks) -> list[PolicyProblem]:
    problems = []
    for item in error.errors(include_url=False):
        loc: PathKey = tuple(item["loc"])
        kind = item["type"]
        if kind == "missing":
            line, column = marks.locate(loc[:-1])
            where = dotted(loc[:-1]) or "the top level"
            message = f"missing required key '{loc[-1]}' in {where}"
        elif kind == "extra_forbidden":
            line, column = marks.locate(loc, key=True)
            message = f"unknown key '{loc[-1]}' in {dotted(loc[:-1]) or 'the top level'}"
            close = difflib.get_close_matches(str(loc[-1]), _allowed_keys(Policy, loc[:-1]), n=1)
            if close:
                message += f" (did you mean '{close[0]}'?)"
        else:
            line, column = marks.locate(loc)
            text = item["msg"].removeprefix("Value error, ")
            message = f"{dotted(loc) or 'the document'}: {text}"
        problems.append(PolicyProblem(file, line, column, message))
    return problems


def _reference_problems(file: str, found: Iterable[Reference], marks: _Marks) -> list[PolicyProblem]:
    return [
        PolicyProblem(file, *marks.locate(ref.path), f"{dotted(ref.path)}: {ref.message}")
        for ref in found
    ]


def parse_policy(text: str, file: str = "<policy>") -> Policy:
    """Parse and check a policy given as YAML text; raise `PolicyError` with every problem."""
    try:
        node = yaml.compose(text, Loader=_YamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = " ".join(part for part in (exc.context, exc.problem) if part)
        raise PolicyError([PolicyProblem(file, line, column, f"YAML syntax error: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([PolicyProblem(file, 1, 1, f"YAML error: {exc}")]) from None
    if node is None:
        raise PolicyError([PolicyProblem(file, 1, 1, "the file is empty: a policy is a mapping")])
    if not isinstance(node, yaml.MappingNode):
        line, column = _mark(node)
        raise PolicyError([PolicyProblem(file, line, column, "a policy must be a mapping of keys")])

    builder = _Builder(file)
    try:
        data = builder.build(node)
    except yaml.MarkedYAMLError as exc:  # a scalar PyYAML cannot construct, e.g. a bad date
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError([PolicyProblem(file, line, column, f"YAML error: {exc.problem}")]) from None
    if builder.problems:
        raise PolicyError(builder.problems)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_validation_problems(file, exc, builder.marks)) from None
    problems = _reference_problems(file, check_references(policy), builder.marks)
    if problems:
        raise PolicyError(problems)
    return policy


def load_policy(path: str | Path) -> Policy:
    """Load a policy file; raise `PolicyError` (located problems) if anything is wrong."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([PolicyProblem(file, 1, 1, "no such file")]) from None
    except IsADirectoryError:
        raise PolicyError([PolicyProblem(file, 1, 1, "is a directory, not a policy file")]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([PolicyProblem(file, 1, 1, f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise PolicyError([PolicyProblem(file, 1, 1, f"cannot read: {exc.strerror}")]) from None
    return parse_policy(text, file)
