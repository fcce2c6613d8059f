"""The human-readable policy: rendered from the YAML, with every section of the published text."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import get_args

import pytest

from charter.policy.loader import parse_policy
from charter.policy.render import render_html, render_markdown
from charter.policy.schema import Policy, Section, Table
from tests.conftest import PUBLISHED_TEXT

Renderer = Callable[[Policy], str]


def published_headings() -> list[str]:
    """The section headings of the published text: short lines that are not sentences."""
    headings = []
    for raw in PUBLISHED_TEXT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and len(line) < 60 and not line.startswith("•") and line[-1] not in ".,:;!?":
            headings.append(line)
    return headings


class Page(HTMLParser):
    """What a reader sees of a rendered page: its headings, its text and its tables."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[tuple[str, str]] = []
        self.text_before_h2 = ""
        self.text = ""
        self.tables: dict[str, list[list[str]]] = {}
        self._open: str | None = None
        self._chunk = ""
        self._caption = ""
        self._cell: list[str] | None = None
        self._seen_h2 = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, _attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"h1", "h2", "h3"}:
            self._open, self._chunk = tag, ""
            self._seen_h2 = self._seen_h2 or tag == "h2"
        elif tag == "table":
            self.tables[self._caption] = []
        elif tag == "tr":
            self.tables[self._caption].append([])
        elif tag in {"th", "td"} and self._cell is None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self.headings.append((tag, self._chunk.strip()))
            if tag == "h3":
                self._caption = self._chunk.strip()
            self._open = None
        elif tag in {"th", "td"} and self._cell is not None:
            self.tables[self._caption][-1].append("; ".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text += data
        if not self._seen_h2:
            self.text_before_h2 += data
        if self._open:
            self._chunk += data
        if self._cell is not None and data.strip():
            self._cell.append(data.strip())

    def level(self, tag: str) -> list[str]:
        return [text for level, text in self.headings if level == tag]

    def rows(self, caption: str) -> dict[str, list[str]]:
        """The table under `caption`, each row keyed by its first cell (the header row too)."""
        return {row[0]: row for row in self.tables[caption]}


def markdown_headings(markdown: str, marker: str) -> list[str]:
    return [line.removeprefix(marker) for line in markdown.splitlines() if line.startswith(marker)]


def markdown_plain(markdown: str) -> str:
    """The Markdown with its backslash escapes resolved, as a reader of the result sees it."""
    return re.sub(r"\\(.)", r"\1", markdown)


def long_date(policy: Policy) -> str:
    day = policy.organisation.last_modified
    return f"{day:%B} {day.day}, {day.year}"


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} exactly once in the policy file"
    return text.replace(old, new)


def test_published_text_has_the_ten_headings() -> None:
    assert published_headings() == [
        "Collectible Information",
        "Data We Collect",
        "Services Visitors",
        "Services Users",
        "Collected Data Use",
        "Shared Information",
        "Information Retention",
        "Information Transfer",
        "California Privacy Rights",
        "Privacy Policy Changes",
    ]


@pytest.mark.clause("C1")
def test_html_sections_follow_the_published_text(omni_policy: Policy) -> None:
    page = Page(render_html(omni_policy))

    assert page.level("h2") == published_headings()
    assert page.level("h1") == ["OMNI Technologies, LLC Privacy Policy"]


@pytest.mark.clause("C1")
def test_markdown_sections_follow_the_published_text(omni_policy: Policy) -> None:
    markdown = render_markdown(omni_policy)

    assert markdown_headings(markdown, "## ") == published_headings()
    assert markdown_headings(markdown, "# ") == ["OMNI Technologies, LLC Privacy Policy"]


@pytest.mark.clause("C26")
def test_html_shows_the_last_modified_date_before_the_first_section(omni_policy: Policy) -> None:
    page = Page(render_html(omni_policy))

    assert f"Last modified: {long_date(omni_policy)}" in page.text_before_h2
    assert "Version 1.0" in page.text_before_h2


@pytest.mark.clause("C26")
def test_markdown_shows_the_last_modified_date_before_the_first_section(
    omni_policy: Policy,
) -> None:
    markdown = render_markdown(omni_policy)
    before_first_section = markdown.split("\n## ", 1)[0]

    assert f"Last modified: {long_date(omni_policy)}" in before_first_section
    assert "Version 1.0" in before_first_section


@pytest.mark.clause("C1")
@pytest.mark.parametrize(
    ("edit", "shown"),
    [
        pytest.param(
            ("name: omni_vid", "name: omni_visitor"), ("omni_vid", "omni_visitor"), id="cookie"
        ),
        pytest.param(("months: 84", "months: 85"), ("84 months", "85 months"), id="retention"),
        pytest.param(
            ("name: Example Payments, Inc.", "name: Acme Pay, Inc."),
            ("Example Payments, Inc.", "Acme Pay, Inc."),
            id="recipient",
        ),
        pytest.param(
            ("last_modified: 2026-11-01", "last_modified: 2027-02-03"),
            ("November 1, 2026", "February 3, 2027"),
            id="last-modified",
        ),
    ],
)
@pytest.mark.parametrize("render", [render_html, render_markdown], ids=["html", "markdown"])
def test_the_page_is_rendered_from_the_yaml(
    omni_text: str, render: Renderer, edit: tuple[str, str], shown: tuple[str, str]
) -> None:
    (old, new), (before, after) = edit, shown
    assert before in render(parse_policy(omni_text))

    changed = render(parse_policy(replace_once(omni_text, old, new)))

    assert after in changed
    assert before not in changed


@pytest.mark.clause("C1", "C9", "C11")
@pytest.mark.parametrize("render", [render_html, render_markdown], ids=["html", "markdown"])
def test_every_cookie_recipient_purpose_and_category_is_on_the_page(
    omni_policy: Policy, render: Renderer
) -> None:
    rendered = render(omni_policy)
    text = Page(rendered).text if render is render_html else markdown_plain(rendered)
    names = [
        *(c.name for c in omni_policy.cookies),
        *(r.name for r in omni_policy.recipients),
        *(p.label for p in omni_policy.purposes),
        *(c.label for c in omni_policy.categories),
    ]

    assert [name for name in names if name not in text] == []


@pytest.mark.clause("C1", "C11", "C17")
def test_html_tables_say_what_a_reader_needs(omni_policy: Policy) -> None:
    page = Page(render_html(omni_policy))

    cookies = page.rows("Cookies")
    assert cookies["omni_session"][1:3] == ["Essential", "Session: until you close the browser"]
    assert cookies["omni_vid"][2] == "Persistent: 395 days"

    datamap = page.rows("The personal data we collect")
    email = datamap["E-mail address"]
    assert email[1] == "contact.email"
    assert "Billing for Services" in email[2]
    assert "Example Payments, Inc." in email[3]
    assert email[4] == "As long as the customer instructs us"
    assert datamap["Payment details"][4] == "84 months"

    purposes = page.rows("What we use your data for")
    assert purposes["Billing for Services"][1] == "needed to provide the Service"
    assert purposes["Sending promotional information"][1] == "used unless you opt out"
    assert purposes["Any other purpose, with your consent"][1] == "only with your consent"

    recipients = page.rows("Who receives your data")
    assert recipients["OMNI Technologies Europe Ltd."][-4:] == [
        "GB",
        "2 Example Square, London EC1A 1AA, United Kingdom",
        "Sales and support of OMNI Services in Europe",
        "Yes",
    ]
    assert recipients["Google LLC (Google Ads)"][-1] == "No"

    sign_up = page.rows("What you give us")["Sign-up"]
    assert "Name (mandatory)" in sign_up[2]
    assert "Telephone: Telephone number (optional)" in sign_up[2]

    retention = page.rows("How long we keep it")
    assert retention["Payment details"] == ["Payment details", "84 months"]
    assert "To resolve disputes" in page.text


def test_every_table_type_renders(omni_policy: Policy) -> None:
    every_table = list(get_args(Table))
    section = Section(id="everything", heading="Everything", shows=every_table, clauses=["C1"])
    policy = omni_policy.model_copy(update={"sections": [section]})

    captions = Page(render_html(policy)).level("h3")
    markdown_captions = markdown_headings(render_markdown(policy), "### ")

    assert len(captions) == len(set(captions)) == len(every_table)
    assert markdown_captions == captions


def test_html_escapes_what_the_policy_says(omni_text: str) -> None:
    hostile = replace_once(
        omni_text, "label: Billing for Services", 'label: "Billing <script>alert(1)</script>"'
    )

    html = render_html(parse_policy(hostile))

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Billing <script>alert(1)</script>" in Page(html).text


def test_markdown_escapes_what_the_policy_says(omni_text: str) -> None:
    hostile = replace_once(
        omni_text, "label: Billing for Services", 'label: "Billing <script> | *now*"'
    )

    markdown = render_markdown(parse_policy(hostile))

    assert "<script>" not in markdown
    assert r"Billing \<script\> \| \*now\*" in markdown
    for table in re.split(r"\n\n", markdown):
        rows = [line for line in table.splitlines() if line.startswith("|")]
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) <= 1, f"a table row has the wrong number of cells:\n{table}"
