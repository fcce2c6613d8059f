"""Each kind of mistake in a policy file is reported at its line and column, in words.

Every test makes one targeted edit to `omni.yaml` and finds the edited line in the result,
so the expected place follows the file as it changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from charter.policy.loader import PolicyError, PolicyProblem, load_policy, parse_policy
from charter.policy.schema import Policy

FILE = "omni.yaml"


def edit(text: str, old: str, new: str) -> str:
    """`text` with its one occurrence of `old` replaced by `new`."""
    assert text.count(old) == 1, f"the edit must be targeted: {old!r} occurs {text.count(old)}x"
    return text.replace(old, new)


def place(text: str, fragment: str, *, after: str = "") -> tuple[int, int]:
    """Line and column (1-based) of the one occurrence of `fragment`, or of the first one
    after the one occurrence of `after`."""
    if after:
        assert text.count(after) == 1, f"{after!r} must be unique"
        index = text.index(fragment, text.index(after) + len(after))
    else:
        assert text.count(fragment) == 1, f"{fragment!r} must be unique"
        index = text.index(fragment)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def problems_of(text: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, FILE)
    assert caught.value.problems, "a PolicyError always says what is wrong"
    return caught.value.problems


def only_problem(text: str) -> PolicyProblem:
    problems = problems_of(text)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_the_published_policy_loads(omni_text: str) -> None:
    policy = parse_policy(omni_text, FILE)

    assert isinstance(policy, Policy)
    assert policy.organisation.version == "1.0"


def test_a_problem_prints_as_file_line_column_message() -> None:
    problem = PolicyProblem("policies/omni.yaml", 12, 5, "unknown key 'x' in organisation")

    assert str(problem) == "policies/omni.yaml:12:5: unknown key 'x' in organisation"


# --- the shape of the document: keys and types ------------------------------------------


def test_unknown_key_is_named_with_a_suggestion(omni_text: str) -> None:
    text = edit(omni_text, "    label: Data map\n", "    labl: Data map\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "labl: Data map")
    assert "unknown key 'labl' in safeguards[0]" in problem.message
    assert "did you mean 'label'?" in problem.message


def test_unknown_key_far_from_any_known_key_gets_no_suggestion(omni_text: str) -> None:
    text = edit(omni_text, "  date_at_top: true\n", "  date_at_top: true\n  zzz: 1\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "zzz: 1")
    assert problem.message == "unknown key 'zzz' in changes"


def test_missing_required_key_points_at_its_mapping(omni_text: str) -> None:
    text = edit(
        omni_text,
        "    label: Billing for Services\n    basis: service\n",
        "    label: Billing for Services\n",
    )

    problem = only_problem(text)

    # A missing key has no line of its own: the mapping that lacks it starts at its `id`.
    assert (problem.line, problem.column) == place(text, "id: billing", after="\npurposes:")
    assert problem.message == "missing required key 'basis' in purposes[2]"


@pytest.mark.parametrize(
    ("old", "new", "value", "named"),
    [
        ("deadline_days: 30\n", "deadline_days: soon\n", "soon", "valid integer"),
        ("lifetime_days: 395\n", "lifetime_days: -1\n", "-1", "greater than 0"),
        ("basis: consent\n", "basis: maybe\n", "maybe", "'service', 'opt_out' or 'consent'"),
        ("country: IE\n", "country: Ireland\n", "Ireland", "should match pattern"),
        ("date_at_top: true\n", "date_at_top: perhaps\n", "perhaps", "valid boolean"),
        ("short_name: OMNI\n", "short_name: [OMNI]\n", "[OMNI]", "valid string"),
        ("last_modified: 2026-11-01\n", "last_modified: 1 November\n", "1 November", "date"),
        ("clauses: [C1, C23]\n", "clauses: [C1, C27]\n", "C27", "should match pattern"),
    ],
)
def test_wrong_type_names_the_key_and_what_was_expected(
    omni_text: str, old: str, new: str, value: str, named: str
) -> None:
    text = edit(omni_text, old, new)

    problem = only_problem(text)

    line, column = place(text, new)
    assert (problem.line, problem.column) == (line, column + new.index(value))
    assert new.split(":", maxsplit=1)[0] in problem.message
    assert named in problem.message


def test_wrong_type_quotes_what_the_file_said(omni_text: str) -> None:
    text = edit(omni_text, "    deadline_days: 30\n", "    deadline_days: soon\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "soon")
    assert problem.message.startswith("rights[0].deadline_days: Input should be a valid integer")
    assert problem.message.endswith("(got 'soon')")


def test_a_rule_across_keys_points_at_its_item(omni_text: str) -> None:
    text = edit(omni_text, "    lifetime_days: 395\n", "")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "name: omni_vid")
    assert problem.message == "cookies[0]: a persistent cookie needs lifetime_days"


def test_duplicate_mapping_key_names_the_first_one(omni_text: str) -> None:
    text = edit(omni_text, "    label: Data map\n", "    label: Data map\n    label: Map\n")

    problem = only_problem(text)

    first_line, _ = place(text, "label: Data map")
    assert (problem.line, problem.column) == place(text, "label: Map")
    assert problem.message == f"duplicate key 'label' (first given on line {first_line})"


def test_a_key_that_is_not_text_is_refused(omni_text: str) -> None:
    text = edit(omni_text, "  short_name: OMNI\n", "  short_name: OMNI\n  404: OMNI\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "404: OMNI")
    assert problem.message == "keys must be text, got 404"


def test_a_value_yaml_cannot_read_is_located(omni_text: str) -> None:
    text = edit(omni_text, "last_modified: 2026-11-01", "last_modified: 2026-13-45")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "2026-13-45")
    assert problem.message == "cannot read '2026-13-45' as timestamp (month must be in 1..12)"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("!!int many", "cannot read 'many' as int"),
        ("!!bool maybe", "cannot read 'maybe' as bool"),
        ("!!timestamp later", "cannot read 'later' as timestamp"),
        ("!!python/object:os.system echo", "could not determine a constructor"),
        ("!unknown x", "could not determine a constructor for the tag '!unknown'"),
    ],
)
def test_a_bad_or_unsafe_tag_is_located(omni_text: str, value: str, said: str) -> None:
    text = edit(omni_text, "    deadline_days: 30\n", f"    deadline_days: {value}\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, value)
    assert said in problem.message


# --- YAML syntax ------------------------------------------------------------------------


def test_bad_indentation_is_a_located_syntax_error(omni_text: str) -> None:
    text = edit(omni_text, "    label: Data map\n", "   label: Data map\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "label: Data map")
    assert problem.message.startswith("YAML syntax error: ")
    assert "expected '-' indicator" in problem.message


def test_a_tab_in_indentation_is_a_located_syntax_error(omni_text: str) -> None:
    text = edit(omni_text, "    label: Data map\n", "\tlabel: Data map\n")

    problem = only_problem(text)

    assert problem.line == place(text, "label: Data map")[0]
    assert "YAML syntax error" in problem.message
    assert "tab" in problem.message


def test_an_unclosed_bracket_points_where_it_opens(omni_text: str) -> None:
    text = edit(omni_text, "    clauses: [C26]\n\nsafeguards:", "    clauses: [C26\n\nsafeguards:")

    problem = only_problem(text)

    # The parser notices two lines later; the mistake is where the bracket opens.
    assert (problem.line, problem.column) == place(text, "[C26\n")
    assert problem.message.startswith("YAML syntax error: while parsing a flow sequence")
    assert "did not find expected ',' or ']'" in problem.message
    noticed = place(text, "safeguards:")[0]
    assert f"at line {noticed}," in problem.message


def test_an_unclosed_quote_at_the_end_points_where_it_opens(omni_text: str) -> None:
    text = edit(omni_text, "  notice: on_policy_page\n", "  notice: 'on_policy_page\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "'on_policy_page")
    assert "while scanning a quoted scalar that starts here" in problem.message
    assert "found unexpected end of stream" in problem.message


def test_an_unclosed_quote_closed_by_a_later_one_points_where_it_opens(omni_text: str) -> None:
    text = edit(omni_text, '  version: "1.0"\n', '  version: "1.0\n')

    problem = only_problem(text)

    # The next `"` in the file closes the text, and the parser fails only there.
    stopped, _ = place(text, '"Location from which')
    assert (problem.line, problem.column) == place(text, '"1.0')
    assert problem.message.startswith("YAML syntax error: the quoted text that starts here ")
    assert f"runs on to line {stopped}," in problem.message
    assert "is a closing quote missing?" in problem.message


def test_a_mapping_value_in_the_wrong_place_is_a_syntax_error(omni_text: str) -> None:
    text = edit(omni_text, "  short_name: OMNI\n", "  short_name: OMNI: Technologies\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, ": Technologies")
    assert problem.message == "YAML syntax error: mapping values are not allowed in this context"


def test_a_control_character_is_located(omni_text: str) -> None:
    # The line holds non-ASCII text before the character: the column counts characters.
    text = edit(omni_text, "Code §1798.83\n", "Code §1798.83\x07\n")

    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, "\x07")
    assert problem.message.startswith("character '\\x07' is not allowed in YAML")


def test_a_second_document_is_refused(omni_text: str) -> None:
    text = omni_text + "---\nextra: true\n"

    problem = only_problem(text)

    assert problem.line == place(text, "---\nextra")[0]
    assert "expected a single document" in problem.message


# --- aliases --------------------------------------------------------------------------


def test_an_alias_inside_its_own_anchor_is_refused(omni_text: str) -> None:
    text = edit(omni_text, "  clauses: [C1, C26]\n", "  clauses: &loop [C1, *loop]\n")

    problems = problems_of(text)

    # An alias is the very value it names: the place to show is the anchor.
    line, column = place(text, "&loop")
    assert PolicyProblem(FILE, line, column, "an alias refers to the value that contains it") in (
        problems
    )


def test_an_alias_bomb_is_refused_not_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\n"

    problem = only_problem(text)

    assert problem.line <= len(lines)
    assert "expands to more than" in problem.message


# --- references across sections --------------------------------------------------------


def test_duplicate_purpose_names_both_places_and_nothing_else(omni_text: str) -> None:
    twin = (
        "  - id: billing\n"
        "    label: Billing twin\n"
        "    basis: service\n"
        "    categories: [billing.payment]\n"
        "    clauses: [C18]\n"
    )
    text = edit(omni_text, "\nenrichment_sources:\n", f"{twin}\nenrichment_sources:\n")

    problem = only_problem(text)

    # Only the duplicate: what refers to `billing` keeps meaning the first declaration.
    first_line, _ = place(text, "id: billing", after="\npurposes:")
    line, column = place(text, "billing\n    label: Billing twin")
    assert (problem.line, problem.column) == (line, column)
    assert "duplicate purpose 'billing'" in problem.message
    assert problem.message.endswith(f"(see line {first_line})")


def test_duplicate_category_is_reported(omni_text: str) -> None:
    text = edit(
        omni_text,
        "  - {id: contact.phone, label: Telephone number, clauses: [C9]}\n",
        "  - {id: contact.email, label: Telephone number, clauses: [C9]}\n",
    )

    problems = problems_of(text)

    line, column = place(text, "contact.email, label: Telephone")
    assert problems[0] == PolicyProblem(
        FILE,
        line,
        column,
        "categories[2].id: duplicate category 'contact.email', first declared at categories[1].id"
        f" (see line {line - 1})",
    )


@pytest.mark.parametrize(
    ("old", "new", "bad", "message"),
    [
        pytest.param(
            "{name: email, label: Sender's address, category: contact.email}",
            "{name: email, label: Sender's address, category: contact.fax}",
            "contact.fax",
            "collection_points[7].fields[0].category: 'contact.fax' is not a declared category",
            id="category-of-a-field",
        ),
        pytest.param(
            "categories: [identity.name, contact.email, survey.answers]",
            "categories: [identity.name, contact.fax, survey.answers]",
            "contact.fax",
            "purposes[7].categories[1]: 'contact.fax' is not a declared category or group",
            id="category-of-a-purpose",
        ),
        pytest.param(
            "categories: [identity.name, contact.email, contact.postal_address, billing.payment]",
            "categories: [identity.name, contact.fax, contact.postal_address, billing.payment]",
            "contact.fax",
            "recipients[3].categories[1]: 'contact.fax' is not a declared category or group",
            id="category-of-a-recipient",
        ),
        pytest.param(
            "    purposes: [described_obligations]\n",
            "    purposes: [hiring]\n",
            "hiring",
            "roles[5].purposes[0]: 'hiring' is not a declared purpose",
            id="purpose-of-a-role",
        ),
        pytest.param(
            "    subjects: [job_applicant]\n    method: form\n",
            "    subjects: [applicant]\n    method: form\n",
            "applicant",
            "collection_points[6].subjects[0]: 'applicant' is not a declared subject",
            id="subject-of-a-collection-point",
        ),
        pytest.param(
            "    subjects: [job_applicant]\n    clauses: [C2, C6]\n",
            "    subjects: [applicant]\n    clauses: [C2, C6]\n",
            "applicant",
            "roles[5].subjects[0]: 'applicant' is not a declared subject",
            id="subject-of-a-role",
        ),
        pytest.param(
            "    purposes: [fraud_and_legal]\n",
            "    purposes: [policing]\n",
            "policing",
            "recipients[7].purposes[0]: 'policing' is not a declared purpose",
            id="purpose-of-a-recipient",
        ),
        pytest.param(
            "    readable_by_roles: [recruiter]\n",
            "    readable_by_roles: [recruiters]\n",
            "recruiters",
            "collection_points[6].readable_by_roles[0]: 'recruiters' is not a declared role",
            id="role-of-a-collection-point",
        ),
        pytest.param(
            "    purpose: service_improvement\n",
            "    purpose: analytics\n",
            "analytics",
            "cookies[4].purpose: 'analytics' is not a declared purpose",
            id="purpose-of-a-cookie",
        ),
    ],
)
def test_undeclared_reference_is_located_and_named(
    omni_text: str, old: str, new: str, bad: str, message: str
) -> None:
    text = edit(omni_text, old, new)

    problem = only_problem(text)

    line, column = place(text, new)
    assert (problem.line, problem.column) == (line, column + new.index(bad))
    assert problem.message.startswith(message)


def test_undeclared_category_of_a_retention_rule(omni_text: str) -> None:
    text = edit(
        omni_text,
        "{category: employment, keep: period, months: 24, clauses: [C23]}",
        "{category: employee, keep: period, months: 24, clauses: [C23]}",
    )

    problems = problems_of(text)

    # The rule covers nothing, so its category is left without one: both are said.
    rule_line, rule_column = place(text, "employee")
    category_line, category_column = place(text, "employment.application, label")
    assert [(p.line, p.column, p.message) for p in problems] == [
        (
            category_line,
            category_column,
            "categories[22].id: category 'employment.application' has no retention rule",
        ),
        (
            rule_line,
            rule_column,
            "retention.rules[14].category: 'employee' is not a declared category or group of "
            "categories",
        ),
    ]


def test_recipient_receiving_what_its_purposes_may_not_use(omni_text: str) -> None:
    text = edit(
        omni_text,
        "    categories: [identity.name, contact.email]\n    clauses: [C22, C24]\n",
        "    categories: [identity.name, contact.email, billing.payment]\n"
        "    clauses: [C22, C24]\n",
    )

    problem = only_problem(text)

    line, column = place(text, "contact.email, billing.payment]")
    assert (problem.line, problem.column) == (line, column + len("contact.email, "))
    assert problem.message == (
        "recipients[5].categories[2]: receives billing.payment, which none of its purposes "
        "(service_communications, surveys, promotional) may use"
    )


def test_category_without_retention_rule(omni_text: str) -> None:
    text = edit(
        omni_text, "    - {category: employment, keep: period, months: 24, clauses: [C23]}\n", ""
    )

    problem = only_problem(text)

    line, column = place(text, "id: employment.application")
    assert (problem.line, problem.column) == (line, column + len("id: "))
    assert problem.message == (
        "categories[22].id: category 'employment.application' has no retention rule"
    )


def test_category_with_two_retention_rules(omni_text: str) -> None:
    text = edit(
        omni_text,
        "    - {category: contact, keep: customer_instructs, clauses: [C23]}\n",
        "    - {category: contact, keep: customer_instructs, clauses: [C23]}\n"
        "    - {category: contact.email, keep: period, months: 1, clauses: [C23]}\n",
    )

    problem = only_problem(text)

    line, column = place(text, "contact.email, keep: period")
    first_line, _ = place(text, "{category: contact, keep")
    assert (problem.line, problem.column) == (line, column)
    assert "category 'contact.email' already has a retention rule" in problem.message
    assert problem.message.endswith(f"(see line {first_line})")


def test_category_that_is_also_a_group(omni_text: str) -> None:
    text = edit(
        omni_text,
        "  - {id: connection.type, label: Internet connection information, clauses: [C9]}\n",
        "  - {id: connection.type, label: Internet connection information, clauses: [C9]}\n"
        "  - {id: connection, label: Connection, clauses: [C9]}\n",
    )

    problems = problems_of(text)

    line, column = place(text, "connection, label: Connection, clauses")
    assert (
        PolicyProblem(
            FILE,
            line,
            column,
            "categories[16].id: 'connection' is both a category and a group of categories",
        )
        in problems
    )


# --- several problems at once -----------------------------------------------------------


def test_every_problem_of_the_document_shape_is_reported_in_file_order(omni_text: str) -> None:
    text = edit(omni_text, "    label: Data map\n", "    labl: Data map\n")
    text = edit(text, "    deadline_days: 30\n", "    deadline_days: soon\n")
    text = edit(
        text,
        "    label: Billing for Services\n    basis: service\n",
        "    label: Billing for Services\n",
    )
    text = edit(text, "  date_at_top: true\n", "  date_at_top: true\n  date_at_top: false\n")

    problems = problems_of(text)

    assert [((p.line, p.column), p.message.split(" (")[0]) for p in problems] == [
        (place(text, "labl"), "unknown key 'labl' in safeguards[0]"),
        (
            place(text, "id: billing", after="\npurposes:"),
            "missing required key 'basis' in purposes[2]",
        ),
        (
            place(text, "soon"),
            "rights[0].deadline_days: Input should be a valid integer, unable to "
            "parse string as an integer",
        ),
        (place(text, "date_at_top: false"), "duplicate key 'date_at_top'"),
    ]


def test_every_reference_problem_is_reported(omni_text: str) -> None:
    text = edit(omni_text, "    purposes: [described_obligations]\n", "    purposes: [hiring]\n")
    text = edit(
        text,
        "    subjects: [job_applicant]\n    method: form\n",
        "    subjects: [applicants]\n    method: form\n",
    )
    text = edit(text, "    purposes: [fraud_and_legal]\n", "    purposes: [policing]\n")

    problems = problems_of(text)

    assert [(p.line, p.column) for p in problems] == [
        place(text, "applicants]"),
        place(text, "policing"),
        place(text, "hiring"),
    ]
    assert all("is not a declared" in p.message for p in problems)


# --- the file itself ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    problem = only_problem(text)

    assert (problem.line, problem.column) == (1, 1)
    assert problem.message == "the file is empty: a policy is a mapping"


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- organisation\n- sections\n", "a list"), ("\n\njust words\n", "a single value")],
)
def test_top_level_must_be_a_mapping(text: str, kind: str) -> None:
    problem = only_problem(text)

    assert (problem.line, problem.column) == place(text, text.strip()[:4])
    assert problem.message == f"a policy must be a mapping of keys, not {kind}"


def test_a_mapping_without_any_policy_key_lists_every_missing_key() -> None:
    problems = problems_of("name: OMNI\n")

    missing = [p.message for p in problems if p.message.startswith("missing required key")]
    assert len(missing) == len(Policy.model_fields)
    assert all((p.line, p.column) == (1, 1) for p in problems)


def test_non_utf8_file_is_located(omni_text: str, tmp_path: Path) -> None:
    text = edit(omni_text, "    label: Data map\n", "    label: Donn\x00es\n")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(text.encode("utf-8").replace(b"\x00", b"\xe9"))

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    line, column = place(text, "\x00")
    assert caught.value.problems == [
        PolicyProblem(
            str(path),
            line,
            column,
            "not UTF-8 text: byte 0xe9 cannot be decoded (invalid continuation byte)",
        )
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert caught.value.problems == [PolicyProblem(str(path), 1, 1, "no such file")]


def test_a_directory_is_not_a_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path)

    assert [p.message for p in caught.value.problems] == ["is a directory, not a policy file"]


def test_load_policy_reports_the_path_it_was_given(omni_text: str, tmp_path: Path) -> None:
    path = tmp_path / "omni.yaml"
    path.write_text(edit(omni_text, "    label: Data map\n", "    labl: Data map\n"), "utf-8")

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert re.fullmatch(
        rf"{re.escape(str(path))}:\d+:\d+: unknown key 'labl' .*", str(caught.value)
    )
