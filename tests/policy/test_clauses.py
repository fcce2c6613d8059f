"""Every promise of the published text (C1-C26) is proven kept by a behaviour test, or is
listed below as not yet enforced; and everything `omni.yaml` declares refers only to what it
declares.

A behaviour test says which clauses it proves with `@pytest.mark.clause("C17")` (or a
module's `pytestmark`); `charter.policy.trace` reads those markers. A clause that only the
YAML names is declared, not kept.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from charter.policy.compiled import CompiledPolicy
from charter.policy.loader import parse_policy
from charter.policy.schema import Policy
from charter.policy.trace import CLAUSES, MarkerProblem, Status, scan_tests, trace_clauses
from tests.serving import CHARTER

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests"
OMNI_YAML = ROOT / "policies" / "omni.yaml"

# The clauses that no behaviour test proves yet, and why. A clause that loses its last test
# fails the trace test below; a clause listed here that gains a test must be taken off.
NOT_YET_ENFORCED = {
    "C4": "additional terms are declared and shown; no acceptance is recorded per person",
    "C15": "user cookies are declared, but nothing at run time tells users' cookies apart",
    "C20": "no push subscriptions, so no device opt-out to honour",
    "C23": "retention periods are declared and shown; nothing deletes when they end",
}


def write_tests(root: Path, files: dict[str, str]) -> Path:
    """A tests folder under `root` holding `files` (path -> source), for the scanner."""
    folder = root / "tests"
    for name, source in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


# --- the trace of the suite ---------------------------------------------------------------------


def test_every_clause_has_a_behaviour_test_or_is_listed_as_not_yet_enforced(
    omni_policy: Policy,
) -> None:
    trace = trace_clauses(omni_policy, SUITE)
    unproven = trace.having(Status.DECLARED)

    assert [str(problem) for problem in trace.problems] == []
    assert trace.having(Status.NOT_DECLARED) == []
    assert [c for c in unproven if c not in NOT_YET_ENFORCED] == [], "these lost every test"
    assert [c for c in NOT_YET_ENFORCED if c not in unproven] == [], (
        "these clauses have behaviour tests now: take them off NOT_YET_ENFORCED"
    )


def test_every_clause_is_stated_by_a_section(omni_policy: Policy) -> None:
    stated = {clause for section in omni_policy.sections for clause in section.clauses}

    assert sorted(stated, key=lambda c: int(c[1:])) == list(CLAUSES)


def test_policy_items_are_traced_by_their_paths_and_sections_apart(omni_policy: Policy) -> None:
    trace = {clause.clause: clause for clause in trace_clauses(omni_policy, SUITE).clauses}

    assert trace["C21"].items == ("sharing_rules",)
    assert "recipients.google_ads" in trace["C22"].items
    assert "purposes.promotional" in trace["C22"].items
    assert "retention.rules.billing" in trace["C23"].items
    assert "cookies.omni_session" in trace["C15"].items
    assert "categories.identity.name" in trace["C16"].items
    assert trace["C26"].items == ("organisation", "changes")
    assert trace["C26"].sections == ("sections.privacy_policy_changes",)
    assert not [item for c in trace.values() for item in c.items if item.startswith("sections")]


# --- the scanner notices what is missing ------------------------------------------------------


def test_the_clauses_a_tests_folder_does_not_prove_are_found_not_enforced(
    tmp_path: Path, omni_policy: Policy
) -> None:
    folder = write_tests(
        tmp_path,
        {
            "test_forms.py": """\
                import sys

                import pytest

                pytestmark = [pytest.mark.slow, pytest.mark.clause("C5")]


                @pytest.mark.clause("C17")
                @pytest.mark.parametrize("field", ["name", "email"])
                def test_a_missing_field_is_refused(field):
                    assert field


                @pytest.mark.skipif(sys.platform == "win32", reason="runs on one kind only")
                def test_a_form_is_stored():
                    assert True


                @pytest.mark.clause("C6", "C7")
                class TestLetters:
                    def test_a_letter_is_kept(self):
                        assert True

                    def helper(self):
                        return None
            """,
            "audit/test_chain.py": """\
                from pytest import mark


                @mark.clause("C3")
                async def test_an_edit_is_found():
                    assert True
            """,
            # Not a test file by pytest's rules: its markers prove nothing.
            "helpers.py": """\
                import pytest


                @pytest.mark.clause("C9")
                def test_looks_like_one():
                    assert True
            """,
        },
    )

    trace = trace_clauses(omni_policy, folder)
    tests = {clause.clause: clause.tests for clause in trace.clauses}

    assert trace.problems == ()
    assert trace.having(Status.ENFORCED) == ["C3", "C5", "C6", "C7", "C17"]
    assert trace.having(Status.DECLARED) == [
        clause for clause in CLAUSES if clause not in {"C3", "C5", "C6", "C7", "C17"}
    ]
    assert tests["C5"] == (
        "tests/test_forms.py::test_a_missing_field_is_refused",
        "tests/test_forms.py::test_a_form_is_stored",
        "tests/test_forms.py::TestLetters::test_a_letter_is_kept",
    )
    assert tests["C17"] == ("tests/test_forms.py::test_a_missing_field_is_refused",)
    assert (
        tests["C6"] == tests["C7"] == ("tests/test_forms.py::TestLetters::test_a_letter_is_kept",)
    )
    assert tests["C3"] == ("tests/audit/test_chain.py::test_an_edit_is_found",)
    assert tests["C9"] == ()


def test_a_marker_the_trace_cannot_count_is_a_located_problem(tmp_path: Path) -> None:
    folder = write_tests(
        tmp_path,
        {
            "test_odd.py": """\
                import pytest

                CLAUSE = "C1"


                @pytest.mark.clause("C27")
                def test_out_of_the_catalogue():
                    assert True


                @pytest.mark.clause("c17", kind="form")
                def test_lower_case():
                    assert True


                @pytest.mark.clause()
                def test_nothing_named():
                    assert True


                @pytest.mark.clause(CLAUSE)
                def test_a_name_not_a_text():
                    assert True


                @pytest.fixture
                @pytest.mark.clause("C2")
                def person():
                    return "p"


                @pytest.mark.parametrize("x", [pytest.param(1, marks=pytest.mark.clause("C8"))])
                def test_a_marked_parameter(x):
                    assert x


                @pytest.mark.skip(reason="not built yet")
                @pytest.mark.clause("C20")
                def test_never_run():
                    assert False
            """,
            "test_broken.py": "def test_(:\n",
        },
    )

    proofs = scan_tests(folder)

    assert proofs.tests == {}
    odd = "tests/test_odd.py"
    assert list(proofs.problems) == [
        MarkerProblem("tests/test_broken.py", 1, "cannot be read as Python: invalid syntax"),
        MarkerProblem(odd, 6, "'C27' is not a clause of the policy (C1-C26)"),
        MarkerProblem(odd, 11, "a clause marker takes clause ids only, no keywords"),
        MarkerProblem(odd, 11, "'c17' is not a clause of the policy (C1-C26)"),
        MarkerProblem(odd, 16, "a clause marker that names no clause"),
        MarkerProblem(odd, 21, "a clause id must be written out, as in 'C17'"),
        MarkerProblem(odd, 28, "'person' is marked but is not a test"),
        MarkerProblem(odd, 39, "'test_never_run' is skipped or xfail: not counted"),
        MarkerProblem(
            odd,
            32,
            "a clause marker that is neither a decorator of a test nor in pytestmark: "
            "the trace cannot tell which test it marks",
        ),
    ]


def test_a_clause_no_item_declares_is_found_not_declared(tmp_path: Path, omni_text: str) -> None:
    # Re-label every C25 (California rights) of the items as C1: the trace must notice.
    head, items = omni_text.split("\nsafeguards:", 1)
    text = head + "\nsafeguards:" + items.replace("C25]", "C1]").replace("C25,", "C1,")
    policy = parse_policy(text, "omni.yaml")

    trace = {c.clause: c for c in trace_clauses(policy, write_tests(tmp_path, {})).clauses}

    assert trace["C25"].status is Status.NOT_DECLARED
    assert trace["C25"].items == ()
    assert trace["C25"].sections == ("sections.california_privacy_rights",)
    assert trace["C24"].status is Status.DECLARED


# --- `charter policy clauses` -----------------------------------------------------------------


def clauses_command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHARTER, "policy", "clauses", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The first line of each clause's row of the table, as its cells."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃|]", line)[1:-1]]
        if cells and re.fullmatch(r"C\d+", cells[0]):
            rows[cells[0]] = cells
    return rows


@pytest.mark.slow
def test_the_command_reports_the_suites_trace_as_json() -> None:
    result = clauses_command("--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    pending = [clause for clause in CLAUSES if clause in NOT_YET_ENFORCED]
    assert (report["policy"], report["tests"]) == (str(OMNI_YAML), str(SUITE))
    assert (report["total"], report["enforced"]) == (26, 26 - len(pending))
    assert report["declared_not_enforced"] == pending
    assert report["not_declared"] == []
    assert report["problems"] == []
    by_clause = {entry["clause"]: entry for entry in report["clauses"]}
    assert list(by_clause) == list(CLAUSES)
    mandatory = by_clause["C17"]
    assert mandatory["status"] == "enforced"
    assert "collection_points.sign_up" in mandatory["items"]
    assert mandatory["sections"] == ["sections.collectible_information", "sections.services_users"]
    assert (
        "tests/vault/test_collection.py::"
        "test_a_missing_mandatory_field_is_refused_and_every_one_is_named"
    ) in mandatory["tests"]
    rights = by_clause["C25"]
    assert rights["status"] == "enforced"
    assert rights["items"] == ["recipients.omni_europe", "rights.shine_the_light"]
    assert rights["sections"] == ["sections.california_privacy_rights"]
    assert (
        "tests/requests/test_state_machine.py::test_no_order_of_calls_answers_an_unverified_erasure"
    ) in rights["tests"]
    unproven = by_clause["C23"]
    assert (unproven["status"], unproven["tests"]) == ("declared, not enforced", [])


@pytest.mark.slow
def test_the_command_prints_a_table_a_summary_and_marker_problems(tmp_path: Path) -> None:
    folder = write_tests(
        tmp_path,
        {
            "test_some.py": """\
                import pytest


                @pytest.mark.clause("C17")
                def test_refused():
                    assert True


                @pytest.mark.clause("C3", "C33")
                def test_audited():
                    assert True
            """
        },
    )

    result = clauses_command("--policy", OMNI_YAML, "--tests", folder)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ("tests/test_some.py:9: 'C33' is not a clause of the policy (C1-C26)\n")
    pending = ", ".join(clause for clause in CLAUSES if clause not in {"C3", "C17"})
    assert result.stdout.splitlines()[-1] == (
        f"2 of 26 clauses enforced by behaviour tests; declared but not yet enforced: {pending}"
    )
    rows = table_rows(result.stdout)
    assert list(rows) == list(CLAUSES)
    assert [rows["C17"][i] for i in (0, 3, 4)] == ["C17", "1", "enforced"]
    assert [rows["C4"][i] for i in (0, 1, 3, 4)] == ["C4", "2", "0", "declared, not enforced"]
    assert rows["C21"][2] == "sharing_rules"


@pytest.mark.slow
@pytest.mark.parametrize("where", ["nowhere", "a file"])
def test_a_missing_tests_folder_is_one_line_and_exit_2(tmp_path: Path, where: str) -> None:
    folder = tmp_path / "tests"
    if where == "a file":
        folder.write_text("not a folder\n", encoding="utf-8")

    result = clauses_command("--tests", folder)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"charter: no tests folder at {folder}\n"


# --- references resolve -----------------------------------------------------------------


def test_every_category_reference_stands_for_declared_categories(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    references = [
        *((f"purpose {p.id}", ref) for p in omni_policy.purposes for ref in p.categories),
        *((f"recipient {r.id}", ref) for r in omni_policy.recipients for ref in r.categories),
        *(
            (f"enrichment {e.id}", ref)
            for e in omni_policy.enrichment_sources
            for ref in e.categories
        ),
        *((f"retention {rule.category}", rule.category) for rule in omni_policy.retention.rules),
    ]

    unresolved = [(who, ref) for who, ref in references if not omni_compiled.expand(ref)]

    assert len(references) > 50
    assert unresolved == []


def test_every_form_field_names_one_declared_category(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    fields = [(p.id, f.name, f.category) for p in omni_policy.collection_points for f in p.fields]

    assert [f for f in fields if f[2] not in omni_compiled.categories] == []


def test_every_purpose_reference_is_declared(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    declared = set(omni_compiled.purpose_basis)
    references = [
        *((f"recipient {r.id}", p) for r in omni_policy.recipients for p in r.purposes),
        *((f"role {r.id}", p) for r in omni_policy.roles for p in r.purposes),
        *((f"cookie {c.name}", c.purpose) for c in omni_policy.cookies),
    ]

    assert [(who, p) for who, p in references if p not in declared] == []


def test_every_subject_and_role_reference_is_declared(omni_policy: Policy) -> None:
    subjects = {s.id for s in omni_policy.subjects}
    roles = {r.id for r in omni_policy.roles}
    subject_refs = [
        *((p.id, s) for p in omni_policy.collection_points for s in p.subjects),
        *((c.name, s) for c in omni_policy.cookies for s in c.subjects),
    ]
    role_refs = [
        (p.id, r) for p in omni_policy.collection_points for r in p.readable_by_roles or []
    ]

    assert [ref for ref in subject_refs if ref[1] not in subjects] == []
    assert role_refs, "job applications are readable by recruiters only"
    assert [ref for ref in role_refs if ref[1] not in roles] == []


def test_every_recipient_receives_only_what_its_purposes_use(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    for recipient in omni_policy.recipients:
        allowed = set().union(*(omni_compiled.purpose_categories[p] for p in recipient.purposes))
        received = {leaf for ref in recipient.categories for leaf in omni_compiled.expand(ref)}
        assert received <= allowed, recipient.id


def test_the_data_map_covers_every_category_with_declared_ids(
    omni_compiled: CompiledPolicy,
) -> None:
    recipients = set(omni_compiled.recipients)
    purposes = set(omni_compiled.purpose_basis)

    assert {entry.category for entry in omni_compiled.datamap} == set(omni_compiled.categories)
    for entry in omni_compiled.datamap:
        assert entry.purposes, f"{entry.category} is collected but used for nothing"
        assert set(entry.purposes) <= purposes
        assert set(entry.recipients) <= recipients
        assert entry.category in omni_compiled.retention


def test_every_category_has_exactly_one_retention_rule(
    omni_policy: Policy, omni_compiled: CompiledPolicy
) -> None:
    covered = [
        leaf for rule in omni_policy.retention.rules for leaf in omni_compiled.expand(rule.category)
    ]

    assert sorted(covered) == sorted(omni_compiled.categories)


# --- the purposes of the published text (C18) --------------------------------------------


def test_the_eleven_published_purposes_and_other_with_consent(omni_policy: Policy) -> None:
    published = [p for p in omni_policy.purposes if p.id != "other_with_consent"]
    other = [p for p in omni_policy.purposes if p.id == "other_with_consent"]

    assert len(published) == 11
    assert all(p.basis != "consent" for p in published)
    assert len(other) == 1
    assert other[0].basis == "consent"
    assert all("C18" in p.clauses for p in omni_policy.purposes)
