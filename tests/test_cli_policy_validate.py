"""`charter policy validate FILE`, run as the installed console script."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.serving import CHARTER

pytestmark = pytest.mark.slow

OMNI_YAML = Path(__file__).resolve().parents[1] / "policies" / "omni.yaml"


def validate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHARTER, "policy", "validate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def line_of(text: str, fragment: str) -> int:
    assert text.count(fragment) == 1, fragment
    return text[: text.index(fragment)].count("\n") + 1


def located_lines(stderr: str, path: Path) -> list[tuple[int, int, str]]:
    """Every line of `stderr` as (line, column, message); fails on any other shape."""
    shape = re.compile(rf"{re.escape(str(path))}:(\d+):(\d+): (.+)")
    lines = []
    for text in stderr.splitlines():
        found = shape.fullmatch(text)
        assert found, f"not FILE:LINE:COLUMN: message: {text!r}"
        lines.append((int(found[1]), int(found[2]), found[3]))
    return lines


@pytest.fixture
def bad_policy(tmp_path: Path) -> tuple[Path, str]:
    """omni.yaml with a misspelt key and a wrong type: two located problems."""
    text = OMNI_YAML.read_text(encoding="utf-8")
    text = text.replace("    label: Data map\n", "    labl: Data map\n", 1)
    text = text.replace("    deadline_days: 30\n", "    deadline_days: soon\n", 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text


def test_good_file_exits_0() -> None:
    result = validate(OMNI_YAML)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{OMNI_YAML}: valid (version 1.0)\n"
    assert result.stderr == ""


def test_bad_file_exits_1_with_located_problems(bad_policy: tuple[Path, str]) -> None:
    path, text = bad_policy

    result = validate(path)

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    problems = located_lines(result.stderr, path)
    assert [(line, message.split(" (")[0]) for line, _, message in problems] == [
        (line_of(text, "labl: Data map"), "unknown key 'labl' in safeguards[0]"),
        (
            line_of(text, "deadline_days: soon"),
            "rights[0].deadline_days: Input should be a valid integer, unable to parse string "
            "as an integer",
        ),
    ]


def test_reference_problems_exit_1(tmp_path: Path) -> None:
    text = OMNI_YAML.read_text(encoding="utf-8")
    text = text.replace("    purposes: [described_obligations]\n", "    purposes: [hiring]\n", 1)
    path = tmp_path / "refs.yaml"
    path.write_text(text, encoding="utf-8")

    result = validate(path)

    assert result.returncode == 1
    assert located_lines(result.stderr, path) == [
        (line_of(text, "[hiring]"), 16, "roles[5].purposes[0]: 'hiring' is not a declared purpose")
    ]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"organisation:\n  legal_name: [OMNI\n", "YAML syntax error"),
        (b"", "the file is empty"),
        (b"- a list\n", "a policy must be a mapping"),
        (b"organisation:\n  legal_name: OMNI \xe9\n", "not UTF-8 text"),
    ],
)
def test_unreadable_files_exit_1_without_a_traceback(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)

    result = validate(path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    problems = located_lines(result.stderr, path)
    assert len(problems) == 1
    assert said in problems[0][2]


def test_missing_file_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"

    result = validate(path)

    assert result.returncode == 1
    assert result.stderr == f"{path}:1:1: no such file\n"


def test_json_for_a_good_file() -> None:
    result = validate(OMNI_YAML, "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"valid": True, "version": "1.0", "problems": []}


def test_json_for_a_bad_file(bad_policy: tuple[Path, str]) -> None:
    path, text = bad_policy

    result = validate(path, "--json")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert [set(problem) for problem in report["problems"]] == [
        {"file", "line", "column", "message"}
    ] * 2
    assert [(p["file"], p["line"], p["column"]) for p in report["problems"]] == [
        (str(path), line_of(text, "labl: Data map"), 5),
        (str(path), line_of(text, "deadline_days: soon"), 20),
    ]
    assert report["problems"][0]["message"].startswith("unknown key 'labl'")
