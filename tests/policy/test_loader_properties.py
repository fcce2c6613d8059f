"""Whatever is done to `omni.yaml`, the loader accepts it or says where it is wrong.

Each test mutates the published policy at random and asks the same of the loader: a
`Policy`, or a `PolicyError` whose every problem has a line inside the file, a column, and
words. Any other exception (a traceback for the user) fails the test.
"""

from __future__ import annotations

from functools import cache

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from charter.policy.loader import PolicyError, parse_policy
from charter.policy.schema import Policy

FILE = "omni.yaml"


@cache
def scalar_spans(text: str) -> list[tuple[int, int]]:
    """Where each scalar (key or value) of `text` is, as character offsets."""
    return [
        (event.start_mark.index, event.end_mark.index)
        for event in yaml.parse(text, Loader=yaml.CSafeLoader)
        if isinstance(event, yaml.ScalarEvent)
    ]


# Values that YAML reads as something other than text, or that break its syntax.
TRICKY = [
    "",
    "null",
    "~",
    "true",
    "no",
    "0",
    "-1",
    "1e400",
    ".nan",
    "2026-13-45",
    "[]",
    "{}",
    "[a, b",
    "{a: 1",
    "- item",
    "key: value",
    "'",
    '"',
    "&anchor x",
    "*nowhere",
    "!!int x",
    "!!binary ???",
    "!!python/object:os.system x",
    "!local x",
    "|",
    ">-",
    "%",
    "@",
    "`",
    "#",
    "\t",
    "\x00",
    "\ufeff",
    "\u2028",
]

replacement_values = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=20),
    st.integers().map(str),
    st.floats().map(str),
)


def assert_accepted_or_located(text: str) -> None:
    """The property: a Policy, or located problems, never any other exception."""
    # YAML ends lines at \r and \u2028 as well as \n; so does `str.splitlines`.
    last_line = len(text.splitlines()) + 1
    try:
        policy = parse_policy(text, FILE)
    except PolicyError as exc:
        problems = exc.problems
    else:
        assert isinstance(policy, Policy)
        return
    assert problems, "a PolicyError must carry at least one problem"
    for problem in problems:
        assert problem.file == FILE
        assert 1 <= problem.line <= last_line, (str(problem), last_line)
        assert problem.column >= 1, str(problem)
        assert problem.message.strip(), str(problem)


def line_index(lines: list[str]) -> st.SearchStrategy[int]:
    return st.integers(0, len(lines) - 1)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_deleting_a_line(omni_text: str, data: st.DataObject) -> None:
    lines = omni_text.splitlines(keepends=True)
    index = data.draw(line_index(lines), label="deleted line")
    assert_accepted_or_located("".join(lines[:index] + lines[index + 1 :]))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_duplicating_a_line(omni_text: str, data: st.DataObject) -> None:
    lines = omni_text.splitlines(keepends=True)
    index = data.draw(line_index(lines), label="duplicated line")
    assert_accepted_or_located("".join(lines[: index + 1] + lines[index:]))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_swapping_two_lines(omni_text: str, data: st.DataObject) -> None:
    lines = omni_text.splitlines(keepends=True)
    first = data.draw(line_index(lines), label="first line")
    second = data.draw(line_index(lines), label="second line")
    lines[first], lines[second] = lines[second], lines[first]
    assert_accepted_or_located("".join(lines))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), value=replacement_values)
def test_replacing_a_scalar(omni_text: str, data: st.DataObject, value: str) -> None:
    start, end = data.draw(st.sampled_from(scalar_spans(omni_text)), label="scalar")
    assert_accepted_or_located(omni_text[:start] + value + omni_text[end:])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), inserted=st.text(min_size=1, max_size=8))
def test_inserting_characters(omni_text: str, data: st.DataObject, inserted: str) -> None:
    position = data.draw(st.integers(0, len(omni_text)), label="position")
    assert_accepted_or_located(omni_text[:position] + inserted + omni_text[position:])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_cutting_out_stretches(omni_text: str, data: st.DataObject) -> None:
    text = omni_text
    for _ in range(data.draw(st.integers(1, 4), label="cuts")):
        start = data.draw(st.integers(0, len(text)), label="start")
        length = data.draw(st.integers(0, 40), label="length")
        text = text[:start] + text[start + length :]
    assert_accepted_or_located(text)


def test_the_published_file_is_accepted(omni_text: str) -> None:
    # The one input known to be good: the property is not met by refusing everything.
    assert isinstance(parse_policy(omni_text, FILE), Policy)
