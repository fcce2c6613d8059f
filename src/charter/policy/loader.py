"""Read a policy file and report every mistake at its place: `FILE:LINE:COLUMN: message`.

YAML is composed into nodes first, so that each value keeps the line and column it came
from; the nodes become plain Python values for pydantic, and every error that pydantic or
the reference checks report is mapped back to the node it is about.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from charter.policy.references import PathKey, Reference, check_references, dotted
from charter.policy.schema import Policy

try:
    from yaml import CSafeLoader as _YamlLoader

    # libyaml reports where an unreadable character is in bytes of UTF-8, not in characters.
    _POSITION_IN_BYTES = True
except ImportError:  # pragma: no cover - libyaml is in every wheel of PyYAML we pin
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

    _POSITION_IN_BYTES = False

__all__ = [
    "PolicyError",
    "PolicyProblem",
    "load_policy",
    "parse_policy",
    "parse_policy_bytes",
    "read_policy_file",
]

# Aliases let a small file stand for a huge document ("billion laughs"); a real policy has a
# few thousand values, so anything far beyond that is refused rather than expanded.
MAX_VALUES = 200_000

# Syntax errors whose cause is where a construct *opens* (a bracket or a quote left open),
# while the parser only notices the problem lines later.
_OPENED_CONSTRUCTS = ("while parsing a flow", "while scanning a quoted scalar")


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


# What YAML counts as the end of a line, so that our lines are the lines of its marks.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of the character at `index` of `text`."""
    breaks = list(_LINE_BREAK.finditer(text, 0, index))
    line_start = breaks[-1].end() if breaks else 0
    return (len(breaks) + 1, index - line_start + 1)


class _TooLargeError(Exception):
    """The document expands (through aliases) to more than `MAX_VALUES` values."""

    def __init__(self, node: yaml.Node) -> None:
        super().__init__()
        self.node = node


_NULL_TAG = "tag:yaml.org,2002:null"
_UNREADABLE = object()  # what a scalar PyYAML could not construct is built as
_KINDS: dict[type[yaml.Node], str] = {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list"}


class _Builder:
    """Turns composed YAML nodes into Python values, recording marks and duplicate keys."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks = _Marks(values={}, keys={})
        self.problems: list[PolicyProblem] = []
        # Paths whose value could not be built: pydantic's complaints about them add nothing.
        self.failed: set[PathKey] = set()
        self._scalars = yaml.constructor.SafeConstructor()
        self._open: set[int] = set()
        self._budget = MAX_VALUES

    def build(self, node: yaml.Node, path: PathKey = ()) -> Any:
        self.marks.values[path] = _mark(node)
        self._budget -= 1
        if self._budget < 0:
            raise _TooLargeError(node)
        if isinstance(node, yaml.ScalarNode):
            value = self._scalar(node)
            if value is _UNREADABLE:
                self.failed.add(path)
                return None
            return value
        if id(node) in self._open:
            self._problem(node, "an alias refers to the value that contains it")
            self.failed.add(path)
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, f"keys must be text, got {_KINDS[type(key_node)]}")
                continue
            key = self._scalar(key_node)
            if key is _UNREADABLE:
                continue
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

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self._scalars.construct_object(node)
        except yaml.MarkedYAMLError as exc:  # an unknown or unsafe tag, e.g. `!!python/...`
            self._problem(node, f"YAML error: {exc.problem}")
        # PyYAML's scalar constructors raise whatever their parsing hits: ValueError for
        # `!!int abc`, KeyError for `!!bool maybe`, AttributeError for `!!timestamp x`.
        except Exception as exc:  # noqa: BLE001 - see above; each means a value it cannot read
            message = f"cannot read {node.value!r} as {node.tag.rsplit(':', 1)[-1]}"
            # Only ValueError says why in words ("month must be in 1..12").
            self._problem(node, f"{message} ({exc})" if isinstance(exc, ValueError) else message)
        return _UNREADABLE

    def _problem(self, node: yaml.Node, message: str) -> None:
        line, column = _mark(node)
        self.problems.append(PolicyProblem(self.file, line, column, message))


def _allowed_keys(path: PathKey) -> list[str]:
    """The keys a mapping at `path` may hold, for a "did you mean" hint."""
    model: type[BaseModel] | None = Policy
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return []
        model = _model_in(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _given(value: Any) -> str:
    """What the file said, quoted back after a message about a wrong value."""
    if isinstance(value, dict | list):
        # A model-level check (a cookie's lifetime, a retention rule's months) reports on the
        # whole mapping; quoting it back would only repeat the file.
        return ""
    shown = repr(value)
    return f" (got {shown[:57]}...)" if len(shown) > 60 else f" (got {shown})"


def _validation_problems(
    file: str, error: ValidationError, marks: _Marks, failed: set[PathKey]
) -> list[PolicyProblem]:
    items = [
        item
        for item in error.errors(include_url=False)
        if not any(tuple(item["loc"])[: len(path)] == path for path in failed)
    ]
    # A misspelt key is one mistake: say "unknown key 'labl' (did you mean 'label'?)" and
    # leave out the "missing required key 'label'" that follows from it.
    suggested: dict[PathKey, str] = {}
    unknown: list[PathKey] = [tuple(i["loc"]) for i in items if i["type"] == "extra_forbidden"]
    for key_path in unknown:
        close = difflib.get_close_matches(str(key_path[-1]), _allowed_keys(key_path[:-1]), n=1)
        if close:
            suggested[key_path] = close[0]
    missing_explained = {(*loc[:-1], key) for loc, key in suggested.items()}

    problems = []
    for item in items:
        loc: PathKey = tuple(item["loc"])
        kind = item["type"]
        where = dotted(loc[:-1]) or "the top level"
        if kind == "missing":
            if loc in missing_explained:
                continue
            line, column = marks.locate(loc[:-1])
            message = f"missing required key '{loc[-1]}' in {where}"
        elif kind == "extra_forbidden":
            line, column = marks.locate(loc, key=True)
            message = f"unknown key '{loc[-1]}' in {where}"
            if loc in suggested:
                message += f" (did you mean '{suggested[loc]}'?)"
        else:
            line, column = marks.locate(loc)
            text = item["msg"].removeprefix("Value error, ")
            message = f"{dotted(loc) or 'the document'}: {text}{_given(item['input'])}"
        problems.append(PolicyProblem(file, line, column, message))
    return problems


def _reference_problems(
    file: str, found: Iterable[Reference], marks: _Marks
) -> list[PolicyProblem]:
    problems = []
    for ref in found:
        message = f"{dotted(ref.path)}: {ref.message}"
        if ref.also is not None:
            message += f" (see line {marks.locate(ref.also)[0]})"
        problems.append(PolicyProblem(file, *marks.locate(ref.path), message))
    return problems


def _quote_running_to(text: str, line: int) -> yaml.Mark | None:
    """Where a quoted text starts that runs over several lines and ends on `line` (0-based).

    A quote left open is closed by the next quote in the file, often many lines below, and
    the parser only fails there; the place to fix is where the quoted text starts.
    """
    found = None
    try:
        for token in yaml.scan(text, Loader=_YamlLoader):
            if token.start_mark.line > line:
                break
            if (
                isinstance(token, yaml.ScalarToken)
                and token.style in {"'", '"'}
                and token.start_mark.line < token.end_mark.line == line
            ):
                found = token.start_mark
    except yaml.YAMLError:
        pass  # the scan stops at the very error being explained; what it found so far counts
    return found


def _mark_of(mark: yaml.Mark | None) -> tuple[int, int] | None:
    return (mark.line, mark.column) if mark is not None else None


def _syntax_problem(file: str, text: str, exc: yaml.YAMLError) -> PolicyProblem:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem, problem_mark = exc.problem or "", exc.problem_mark
        context, context_mark = exc.context or "", exc.context_mark
        if (
            context.startswith(_OPENED_CONSTRUCTS)
            and context_mark is not None
            and problem_mark is not None
            and context_mark.line < problem_mark.line
        ):
            where = f"line {problem_mark.line + 1}, column {problem_mark.column + 1}"
            return PolicyProblem(
                file,
                context_mark.line + 1,
                context_mark.column + 1,
                f"YAML syntax error: {context} that starts here: {problem} (at {where})",
            )
        mark = problem_mark or context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if context and context_mark is not None and _mark_of(context_mark) != _mark_of(mark):
            context += f" at line {context_mark.line + 1}, column {context_mark.column + 1}"
        reason = ": ".join(part for part in (context, problem) if part)
        quote = _quote_running_to(text, line - 1)
        if quote is not None:
            return PolicyProblem(
                file,
                quote.line + 1,
                quote.column + 1,
                f"YAML syntax error: the quoted text that starts here runs on to line {line}, "
                f"column {column}, where the parser stopped ({reason}); "
                "is a closing quote missing?",
            )
        return PolicyProblem(file, line, column, f"YAML syntax error: {reason}")
    if isinstance(exc, yaml.reader.ReaderError):
        position = exc.position
        if _POSITION_IN_BYTES:
            position = len(text.encode("utf-8")[:position].decode("utf-8", errors="ignore"))
        character = chr(exc.character) if isinstance(exc.character, int) else exc.character
        message = f"character {character!r} is not allowed in YAML ({exc.reason})"
        return PolicyProblem(file, *_line_column(text, position), message)
    return PolicyProblem(file, 1, 1, f"YAML error: {str(exc).splitlines()[0]}")


def _compose(text: str, file: str) -> yaml.Node:
    try:
        node = yaml.compose(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise PolicyError([_syntax_problem(file, text, exc)]) from None
    except UnicodeEncodeError as exc:  # a lone surrogate: only reachable from a str argument
        where = _line_column(text, exc.start)
        raise PolicyError([PolicyProblem(file, *where, "not valid Unicode text")]) from None
    # A document with nothing in it (or only `---`) composes to nothing, or to an empty null.
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG):
        raise PolicyError([PolicyProblem(file, 1, 1, "the file is empty: a policy is a mapping")])
    if not isinstance(node, yaml.MappingNode):
        kind = _KINDS.get(type(node), "a single value")
        raise PolicyError(
            [PolicyProblem(file, *_mark(node), f"a policy must be a mapping of keys, not {kind}")]
        )
    return node


def parse_policy(text: str, file: str = "<policy>") -> Policy:
    """Parse and check a policy given as YAML text; raise `PolicyError` with every problem."""
    node = _compose(text, file)
    builder = _Builder(file)
    try:
        data = builder.build(node)
    except _TooLargeError as exc:
        message = f"the document expands to more than {MAX_VALUES} values (aliases repeated?)"
        raise PolicyError([PolicyProblem(file, *_mark(exc.node), message)]) from None
    problems = list(builder.problems)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(file, exc, builder.marks, builder.failed)
    else:
        problems += _reference_problems(file, check_references(policy), builder.marks)
    if problems:
        raise PolicyError(sorted(set(problems), key=lambda p: (p.line, p.column, p.message)))
    return policy


def load_policy(path: str | Path) -> Policy:
    """Load a policy file; raise `PolicyError` (located problems) if anything is wrong."""
    return parse_policy_bytes(read_policy_file(path), str(path))


def read_policy_file(path: str | Path) -> bytes:
    """A policy file's bytes; `PolicyError` if it cannot be read."""
    file = str(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PolicyError([PolicyProblem(file, 1, 1, "no such file")]) from None
    except IsADirectoryError:
        raise PolicyError(
            [PolicyProblem(file, 1, 1, "is a directory, not a policy file")]
        ) from None
    except OSError as exc:
        raise PolicyError([PolicyProblem(file, 1, 1, f"cannot read: {exc.strerror}")]) from None


def parse_policy_bytes(data: bytes, file: str) -> Policy:
    """Parse a policy file's bytes (UTF-8), naming `file` in every problem."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        valid = data[: exc.start].decode("utf-8")
        line, column = _line_column(valid, len(valid))
        byte = data[exc.start : exc.start + 1].hex()
        message = f"not UTF-8 text: byte 0x{byte} cannot be decoded ({exc.reason})"
        raise PolicyError([PolicyProblem(file, line, column, message)]) from None
    return parse_policy(text, file)
