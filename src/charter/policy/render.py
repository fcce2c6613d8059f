"""The human-readable policy page, rendered from the declaration as HTML or Markdown.

Each table a reader wants is built here as plain rows, one small builder per table type; the
two templates only lay the rows out, so the HTML page and the Markdown text always agree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

from charter.policy.compiled import CompiledPolicy, compile_policy
from charter.policy.references import expand_categories
from charter.policy.schema import Basis, CollectionPoint, FormField, Policy, RecipientKind, Table

# A table cell is a phrase, or a list of phrases (a bullet list in HTML, `;`-joined in Markdown).
Cell = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Block:
    """One thing shown under a section: a caption, then a table, a note and a list."""

    caption: str
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Cell, ...], ...] = ()
    note: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SectionView:
    id: str
    heading: str | None
    body: tuple[str, ...]
    blocks: tuple[Block, ...]


_BASIS: Mapping[Basis, str] = {
    "service": "needed to provide the Service",
    "opt_out": "used unless you opt out",
    "consent": "only with your consent",
}
_RECIPIENT_KIND: Mapping[RecipientKind, str] = {
    "selected_service": "A service you select",
    "advertiser": "Advertiser",
    "ad_auditor": "Ad auditor",
    "processor": "Processor acting on our instructions",
    "law_enforcement": "Law enforcement or government",
    "affiliate": "Affiliate",
    "acquirer": "Buyer of the business or of its assets",
}
_LAW_ENFORCEMENT_NEEDS = {
    "legal_basis": "a recorded legal basis",
    "approver": "the approval of an authorised member of staff",
}
_ADVERTISERS_HONOUR = {
    "opt_out": "you have opted out",
    "global_privacy_control": "your browser sends the Global Privacy Control signal",
}


class _Index:
    """The policy with its labels looked up by id, in declaration order."""

    def __init__(self, compiled: CompiledPolicy) -> None:
        policy = compiled.policy
        self.policy = policy
        self.compiled = compiled
        self.category = {c.id: c.label for c in policy.categories}
        self.purpose = {p.id: p.label for p in policy.purposes}
        self.subject = {s.id: s.label for s in policy.subjects}
        self.recipient = {r.id: r.name for r in policy.recipients}

    def categories(self, references: Iterable[str]) -> tuple[str, ...]:
        """Labels of the categories the references (categories or groups) stand for."""
        leaves = list(self.category)
        found = dict.fromkeys(leaf for ref in references for leaf in expand_categories(ref, leaves))
        if len(found) == len(leaves) > 1:
            return ("Every type of data listed in this policy",)
        return tuple(self.category[leaf] for leaf in found)

    def purposes(self, ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.purpose[i] for i in ids)


def _months(months: int | None) -> str:
    if months is None:
        return "As long as the customer instructs us"
    return f"{months} month" if months == 1 else f"{months} months"


def _safeguards(ix: _Index) -> Block:
    rows = tuple((s.label, s.description) for s in ix.policy.safeguards)
    return Block("How we protect your data", ("Safeguard", "What it means"), rows)


def _additional_terms(ix: _Index) -> Block:
    rows = tuple((t.service, t.title, t.summary) for t in ix.policy.additional_terms)
    return Block("Additional terms", ("Service", "Terms", "In short"), rows)


def _field(ix: _Index, field: FormField, *, automatic: bool) -> str:
    kind = ix.category[field.category]
    text = field.label if kind == field.label else f"{field.label}: {kind}"
    if automatic:  # nobody fills in what is recorded automatically: "mandatory" means nothing
        return text
    return f"{text} ({'mandatory' if field.mandatory else 'optional'})"


def _collection_rows(ix: _Index, points: Iterable[CollectionPoint]) -> tuple[tuple[Cell, ...], ...]:
    return tuple(
        (
            point.label,
            tuple(ix.subject[s] for s in point.subjects),
            tuple(_field(ix, f, automatic=point.method == "automatic") for f in point.fields),
        )
        for point in points
    )


def _collection_points(ix: _Index) -> Block:
    points = [p for p in ix.policy.collection_points if p.method != "automatic"]
    note = "Every item is mandatory unless it is marked optional."
    published = ", ".join(p.label for p in points if p.publication_needs_permission)
    if published:
        note += f" Published only with your permission: {published}."
    return Block(
        "What you give us",
        ("Where", "Who", "What we ask for"),
        _collection_rows(ix, points),
        note=note,
    )


def _automatic_collection(ix: _Index) -> Block:
    points = [p for p in ix.policy.collection_points if p.method == "automatic"]
    return Block(
        "What is recorded automatically",
        ("What", "Who", "What is recorded"),
        _collection_rows(ix, points),
    )


def _categories(ix: _Index) -> Block:
    rows = tuple(
        (
            entry.label,
            entry.category,
            ix.purposes(entry.purposes),
            tuple(ix.recipient[r] for r in entry.recipients),
            _months(entry.months),
        )
        for entry in ix.compiled.datamap
    )
    return Block(
        "The personal data we collect",
        ("Type of data", "Id", "Used for", "Shared with", "Kept for"),
        rows,
    )


def _cookies(ix: _Index) -> Block:
    rows = tuple(
        (
            c.name,
            c.category.capitalize(),
            "Session: until you close the browser"
            if c.lifetime_days is None
            else f"Persistent: {c.lifetime_days} days",
            ix.purpose[c.purpose],
            c.description,
        )
        for c in ix.policy.cookies
    )
    return Block("Cookies", ("Cookie", "Kind", "Lasts", "Used for", "What it does"), rows)


def _purposes(ix: _Index) -> Block:
    rows = tuple(
        (p.label, _BASIS[p.basis], ix.categories(p.categories)) for p in ix.policy.purposes
    )
    sold = tuple(p.label for p in ix.policy.purposes if p.sale_or_sharing)
    note = "Under California law these uses count as sale or sharing; you can opt out of them:"
    return Block(
        "What we use your data for",
        ("Purpose", "When", "Types of data"),
        rows,
        note=note if sold else "",
        items=sold,
    )


def _enrichment(ix: _Index) -> Block:
    rows = tuple((e.label, ix.categories(e.categories)) for e in ix.policy.enrichment_sources)
    return Block("Information from other sources", ("Source", "Types of data"), rows)


def _recipients(ix: _Index) -> Block:
    rows = tuple(
        (
            r.name,
            _RECIPIENT_KIND[r.kind],
            ix.categories(r.categories),
            ix.purposes(r.purposes),
            r.country,
            r.postal_address,
            r.nature_of_business,
            "Yes" if r.direct_marketing else "No",
        )
        for r in ix.policy.recipients
    )
    columns = (
        "Recipient",
        "Kind",
        "Types of data",
        "Purposes",
        "Country",
        "Address",
        "Nature of business",
        "For its direct marketing",
    )
    return Block("Who receives your data", columns, rows)


def _sharing_rules(ix: _Index) -> Block:
    rules = ix.policy.sharing_rules
    sentences = []
    if rules.never_for_third_party_commercial_purpose:
        sentences.append(
            "We never share, sell, rent or trade your data with third parties for their own "
            "commercial purposes."
        )
    if rules.law_enforcement_requires:
        needs = " and ".join(_LAW_ENFORCEMENT_NEEDS[n] for n in rules.law_enforcement_requires)
        sentences.append(f"Law enforcement and government agencies receive data only with {needs}.")
    if rules.advertisers_honour:
        when = ", or when ".join(_ADVERTISERS_HONOUR[h] for h in rules.advertisers_honour)
        sentences.append(f"Advertisers receive nothing about you once {when}.")
    return Block("How we share", items=tuple(sentences))


def _retention(ix: _Index) -> Block:
    rows = tuple(
        (ix.categories([rule.category]), _months(rule.months)) for rule in ix.policy.retention.rules
    )
    longer = tuple(e.label for e in ix.policy.retention.kept_longer_for)
    return Block(
        "How long we keep it",
        ("Types of data", "Kept for"),
        rows,
        note="We may keep data longer than this:" if longer else "",
        items=longer,
    )


def _transfer_grounds(ix: _Index) -> Block:
    return Block(
        "When we transfer or disclose data across borders",
        items=tuple(g.label for g in ix.policy.transfer_grounds),
    )


def _rights(ix: _Index) -> Block:
    def deadline(days: int, confirm: int | None, extension: int | None) -> str:
        text = f"{days} days"
        if confirm is not None:
            text += f"; we confirm receipt within {confirm} business days"
        if extension is not None:
            text += f"; we may extend once by {extension} days and tell you why"
        return text

    rows = tuple(
        (
            r.label,
            r.law,
            r.channel,
            deadline(r.deadline_days, r.confirm_business_days, r.extension_days),
        )
        for r in ix.policy.rights
    )
    return Block("Your rights", ("Right", "Law", "How to ask", "We answer within"), rows)


def _changes(ix: _Index) -> Block:
    changes, name = ix.policy.changes, ix.policy.organisation.short_name
    sentences = []
    if changes.notice == "on_policy_page":
        sentences.append("Every change is announced on this page.")
    if changes.date_at_top:
        sentences.append("The date of the last modification is shown at the top of this page.")
    if changes.objection == "close_account_and_stop_processing":
        sentences.append(
            f"If you object to a change, you must stop using {name}'s Services; we then close "
            "your account and stop processing your data for them."
        )
    return Block("How we change this policy", items=tuple(sentences))


_TABLES: Mapping[Table, Callable[[_Index], Block]] = {
    "safeguards": _safeguards,
    "additional_terms": _additional_terms,
    "collection_points": _collection_points,
    "categories": _categories,
    "automatic_collection": _automatic_collection,
    "cookies": _cookies,
    "purposes": _purposes,
    "enrichment": _enrichment,
    "recipients": _recipients,
    "sharing_rules": _sharing_rules,
    "retention": _retention,
    "transfer_grounds": _transfer_grounds,
    "rights": _rights,
    "changes": _changes,
}


def _long_date(day: dt.date) -> str:
    return f"{day:%B} {day.day}, {day.year}"


def _context(policy: Policy) -> dict[str, Any]:
    ix = _Index(compile_policy(policy))
    org = policy.organisation
    return {
        "title": f"{org.legal_name} Privacy Policy",
        "organisation": org,
        "last_modified": _long_date(org.last_modified),
        "sections": [
            SectionView(
                id=s.id,
                heading=s.heading,
                body=tuple(s.body),
                blocks=tuple(_TABLES[table](ix) for table in s.shows),
            )
            for s in policy.sections
        ],
    }


# What Markdown would read as formatting or raw HTML; `_` only where it can start emphasis,
# so that ids such as `omni_vid` stay readable in the Markdown source.
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]<>|#]|(?<!\w)_|_(?!\w)")


def _markdown_text(value: object) -> str:
    """Markdown's counterpart of HTML autoescaping, applied to every `{{ }}` of the template."""
    if isinstance(value, tuple):
        return "; ".join(_markdown_text(part) for part in value)
    text = " ".join(str(value).split())
    return _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


_LOADER = jinja2.PackageLoader("charter.policy", "templates")
_HTML = jinja2.Environment(
    loader=_LOADER,
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_MARKDOWN = jinja2.Environment(
    loader=_LOADER,
    autoescape=False,  # noqa: S701 - Markdown, not HTML: `finalize` escapes for Markdown instead
    finalize=_markdown_text,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render_html(policy: Policy) -> str:
    """The policy page as a standalone HTML document (no scripts)."""
    return _HTML.get_template("policy.html.j2").render(_context(policy))


def render_markdown(policy: Policy) -> str:
    """The policy page as Markdown, with the same sections and tables as the HTML page."""
    return _MARKDOWN.get_template("policy.md.j2").render(_context(policy))
