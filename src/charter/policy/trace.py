"""The clause trace: for each promise of the published text (C1-C26), the policy items that
declare it and the behaviour tests that prove it is kept.

A declaration keeps no promise by itself: a clause counts as enforced only when a test that
exercises Charter carries `@pytest.mark.clause("C17")`. Test files are read with `ast`, never
imported, so the trace needs neither pytest nor the suite's fixtures; a clause marker the
reader cannot attribute to a test for certain is reported as a problem, not guessed at.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeGuard

from pydantic import BaseModel

from charter.policy.schema import Policy

__all__ = [
    "CLAUSES",
    "ClauseTrace",
    "MarkerProblem",
    "Proofs",
    "Status",
    "Trace",
    "declared_items",
    "scan_tests",
    "stating_sections",
    "trace_clauses",
]

CLAUSES: tuple[str, ...] = tuple(f"C{number}" for number in range(1, 27))
_KNOWN = frozenset(CLAUSES)


class Status(StrEnum):
    ENFORCED = "enforced"
    DECLARED = "declared, not enforced"
    NOT_DECLARED = "not declared"


@dataclass(frozen=True)
class ClauseTrace:
    """One clause: the items that declare it, the sections that state it, the tests that
    prove it (`tests/path/file.py::test_name`)."""

    clause: str
    items: tuple[str, ...]
    sections: tuple[str, ...]
    tests: tuple[str, ...]

    @property
    def status(self) -> Status:
        if self.tests:
            return Status.ENFORCED
        return Status.DECLARED if self.items else Status.NOT_DECLARED

    def as_json(self) -> dict[str, object]:
        return {
            "clause": self.clause,
            "status": str(self.status),
            "items": list(self.items),
            "sections": list(self.sections),
            "tests": list(self.tests),
        }


@dataclass(frozen=True)
class MarkerProblem:
    """A clause marker the trace cannot count: misspelt, or where no test picks it up."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Proofs:
    """What the test files say: clause -> the tests marked with it, and every problem."""

    tests: dict[str, tuple[str, ...]]
    problems: tuple[MarkerProblem, ...]


@dataclass(frozen=True)
class Trace:
    clauses: tuple[ClauseTrace, ...]
    problems: tuple[MarkerProblem, ...]

    def having(self, status: Status) -> list[str]:
        """The ids of the clauses in `status`, in catalogue order."""
        return [c.clause for c in self.clauses if c.status is status]

    def as_json(self) -> dict[str, object]:
        return {
            "total": len(self.clauses),
            "enforced": len(self.having(Status.ENFORCED)),
            "declared_not_enforced": self.having(Status.DECLARED),
            "not_declared": self.having(Status.NOT_DECLARED),
            "clauses": [clause.as_json() for clause in self.clauses],
            "problems": [vars(problem) for problem in self.problems],
        }


def trace_clauses(policy: Policy, tests: Path) -> Trace:
    """The trace of every clause C1-C26 through `policy` and the test files under `tests`."""
    items, sections, proofs = declared_items(policy), stating_sections(policy), scan_tests(tests)
    return Trace(
        tuple(
            ClauseTrace(
                clause,
                tuple(items.get(clause, ())),
                tuple(sections.get(clause, ())),
                proofs.tests.get(clause, ()),
            )
            for clause in CLAUSES
        ),
        proofs.problems,
    )


# --- The policy side ---------------------------------------------------------------------------


def declared_items(policy: Policy) -> dict[str, list[str]]:
    """Clause -> the paths of the items that declare it (`purposes.promotional`,
    `retention.rules.billing`, `sharing_rules`).

    Sections are left out: they state the published text, while a clause is implemented by
    a rule, a form, a purpose... (see `stating_sections`).
    """
    found: dict[str, list[str]] = {}
    for name in Policy.model_fields:
        if name != "sections":
            for clause, path in _declarations(getattr(policy, name), name):
                found.setdefault(clause, []).append(path)
    return found


def stating_sections(policy: Policy) -> dict[str, list[str]]:
    """Clause -> the sections of the published text that state it (`sections.introduction`)."""
    found: dict[str, list[str]] = {}
    for section in policy.sections:
        for clause in section.clauses:
            found.setdefault(clause, []).append(f"sections.{section.id}")
    return found


def _declarations(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        clauses: Sequence[str] = getattr(value, "clauses", ())
        for clause in clauses:
            yield clause, path
        for name in type(value).model_fields:
            if name != "clauses":
                yield from _declarations(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _declarations(inner, f"{path}.{_label(inner, index)}")


def _label(item: object, index: int) -> str:
    """How a list item is named in its path: its id, else its name (cookies), else the
    category it is about (retention rules), else its place in the list."""
    for key in ("id", "name", "category"):
        label = getattr(item, key, None)
        if isinstance(label, str):
            return label
    return str(index)


# --- The test side ---------------------------------------------------------------------------


def scan_tests(folder: Path) -> Proofs:
    """Read every pytest file under `folder` (`test_*.py`, `*_test.py`) for clause markers.

    A test is named by its path from the folder's parent: `tests/vault/test_x.py::test_y`,
    or `...::TestClass::test_y` for a method.
    """
    proofs: dict[str, list[str]] = {}
    problems: list[MarkerProblem] = []
    for path in sorted(folder.rglob("*.py")):
        if not (path.name.startswith("test_") or path.name.endswith("_test.py")):
            continue
        reader = _Reader(path.relative_to(folder.parent).as_posix())
        reader.read(path)
        for clause, test in reader.proofs:
            named = proofs.setdefault(clause, [])
            if test not in named:
                named.append(test)
        problems += reader.problems
    return Proofs({c: tuple(t) for c, t in proofs.items()}, tuple(problems))


class _Reader:
    """The clause markers of one test file, and whatever it cannot attribute to a test."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.proofs: list[tuple[str, str]] = []
        self.problems: list[MarkerProblem] = []
        self._read_markers: set[int] = set()

    def read(self, path: Path) -> None:
        try:
            tree = ast.parse(path.read_bytes(), filename=self.file)
        except SyntaxError as exc:
            self._problem(exc.lineno or 1, f"cannot be read as Python: {exc.msg}")
            return
        except OSError as exc:
            self._problem(1, f"cannot be read: {exc.strerror}")
            return
        marks = _pytestmark(tree.body)
        self._tests(tree.body, self.file, self._clauses(marks), off=_turned_off(marks))
        # Whatever marker the walk above did not read sits where pytest may apply it to
        # something the trace cannot name (a pytest.param, an alias, a helper): say so.
        for node in ast.walk(tree):
            if _is_mark(node, "clause") and id(node) not in self._read_markers:
                self._problem(
                    node.lineno,
                    "a clause marker that is neither a decorator of a test nor in pytestmark: "
                    "the trace cannot tell which test it marks",
                )

    def _tests(
        self, body: Iterable[ast.stmt], prefix: str, inherited: Sequence[str], *, off: bool
    ) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                own = self._clauses(node.decorator_list)
                if not node.name.startswith("test"):
                    if own:
                        self._problem(node.lineno, f"'{node.name}' is marked but is not a test")
                    continue
                clauses = list(dict.fromkeys([*inherited, *own]))
                if clauses and (off or _turned_off(node.decorator_list)):
                    # A test that never runs, or is expected to fail, proves nothing.
                    self._problem(node.lineno, f"'{node.name}' is skipped or xfail: not counted")
                    continue
                for clause in clauses:
                    self.proofs.append((clause, f"{prefix}::{node.name}"))
            elif isinstance(node, ast.ClassDef):
                marks = [*node.decorator_list, *_pytestmark(node.body)]
                own = self._clauses(marks)
                if node.name.startswith("Test"):
                    name = f"{prefix}::{node.name}"
                    self._tests(node.body, name, [*inherited, *own], off=off or _turned_off(marks))
                elif own:
                    self._problem(node.lineno, f"class '{node.name}' is marked but holds no tests")

    def _clauses(self, marks: Iterable[ast.expr]) -> list[str]:
        return [clause for mark in marks for clause in self._marks(mark)]

    def _marks(self, expression: ast.expr) -> list[str]:
        """The clauses that one mark, or a list or tuple of marks, names."""
        if isinstance(expression, ast.List | ast.Tuple):
            return [clause for item in expression.elts for clause in self._marks(item)]
        if not (isinstance(expression, ast.Call) and _is_mark(expression.func, "clause")):
            return []
        self._read_markers.add(id(expression.func))
        if expression.keywords:
            self._problem(expression.lineno, "a clause marker takes clause ids only, no keywords")
        if not expression.args:
            self._problem(expression.lineno, "a clause marker that names no clause")
        clauses = []
        for argument in expression.args:
            if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
                self._problem(argument.lineno, "a clause id must be written out, as in 'C17'")
            elif argument.value not in _KNOWN:
                self._problem(
                    argument.lineno, f"'{argument.value}' is not a clause of the policy (C1-C26)"
                )
            else:
                clauses.append(argument.value)
        return clauses

    def _problem(self, line: int, message: str) -> None:
        self.problems.append(MarkerProblem(self.file, line, message))


def _pytestmark(body: Iterable[ast.stmt]) -> list[ast.expr]:
    """What a module or class assigns to `pytestmark`: a mark, or a list or tuple of them."""
    found: list[ast.expr] = []
    for node in body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            found.append(value)
    return found


def _turned_off(marks: Iterable[ast.expr]) -> bool:
    """Whether `marks` skip their tests outright or expect them to fail (`skipif` is left
    alone: a test that runs on one database only still proves what it proves)."""
    for mark in marks:
        if isinstance(mark, ast.List | ast.Tuple):
            if _turned_off(mark.elts):
                return True
            continue
        called = mark.func if isinstance(mark, ast.Call) else mark
        if _is_mark(called, "skip") or _is_mark(called, "xfail"):
            return True
    return False


def _is_mark(node: ast.AST, name: str) -> TypeGuard[ast.Attribute]:
    """`pytest.mark.<name>` (or `mark.<name>` after `from pytest import mark`)."""
    if not (isinstance(node, ast.Attribute) and node.attr == name):
        return False
    owner = node.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark"
    )
