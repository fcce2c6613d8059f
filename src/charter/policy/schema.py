"""The policy declaration: what `policies/omni.yaml` may say, as pydantic models.

Every item that keeps a promise of the published text carries `clauses`, the ids of the
clause catalogue (C1-C26) it implements. Cross-references between items (a field's
category, a purpose's categories, a role's purposes, ...) are checked by the loader, which
knows where each value sits in the file.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ClauseId = Annotated[str, Field(pattern=r"^C([1-9]|1[0-9]|2[0-6])$")]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
# A category id is dotted and hierarchical (`contact.email`); a reference may name a whole
# group (`contact`), which stands for every category under it.
CategoryId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]
# An ISO 3166-1 alpha-2 country code (`US`, `IE`).
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
Clauses = Annotated[list[ClauseId], Field(min_length=1)]
Text = Annotated[str, Field(min_length=1)]

Basis = Literal["service", "opt_out", "consent"]
CookieCategory = Literal["essential", "performance", "functionality"]
RecipientKind = Literal[
    "selected_service",
    "advertiser",
    "ad_auditor",
    "processor",
    "law_enforcement",
    "affiliate",
    "acquirer",
]
Source = Literal["given", "automatic", "other_source"]
Table = Literal[
    "safeguards",
    "additional_terms",
    "collection_points",
    "categories",
    "automatic_collection",
    "cookies",
    "purposes",
    "enrichment",
    "recipients",
    "sharing_rules",
    "retention",
    "transfer_grounds",
    "rights",
    "changes",
]
Permission = Literal[
    "audit:read",
    "staff:manage",
    "policy:manage",
    "people:collect",
    "people:use",
    "people:erase",
    "people:lookup",
    "choices:read",
    "choices:write",
    "decisions:ask",
    "events:write",
    "disclosures:make",
    "disclosures:read",
    "requests:manage",
    "requests:submit",
]


class Item(BaseModel):
    """Base of every declaration: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisation(Item):
    legal_name: Text
    short_name: Text
    contact_email: Text
    website: Text
    # Where OMNI is: a disclosure to a recipient in another country is a transfer across
    # borders, which needs one of the transfer grounds (C24).
    country: Country
    last_modified: dt.date
    version: Text
    clauses: Clauses


class Section(Item):
    """One section of the published text, in its order; `heading` is None for the opening."""

    id: Identifier
    heading: str | None
    body: list[Text] = Field(default_factory=list)
    shows: list[Table] = Field(default_factory=list)
    clauses: Clauses


class Safeguard(Item):
    id: Identifier
    label: Text
    description: Text
    clauses: Clauses


class AdditionalTerms(Item):
    id: Identifier
    service: Text
    title: Text
    summary: Text
    clauses: Clauses


class Category(Item):
    id: CategoryId
    label: Text
    clauses: Clauses


class Subject(Item):
    id: Identifier
    label: Text
    description: Text
    clauses: Clauses


class FormField(Item):
    name: Identifier
    label: Text
    category: CategoryId
    # The published text: "all data requested by OMNI is mandatory except in specific cases
    # where we state that some of the data is not mandatory".
    mandatory: bool = True


class CollectionPoint(Item):
    id: Identifier
    label: Text
    subjects: Annotated[list[Identifier], Field(min_length=1)]
    method: Literal["form", "email", "automatic"]
    source: Source
    fields: Annotated[list[FormField], Field(min_length=1)]
    creates_user: bool = False
    links_visitor_history: bool = False
    publication_needs_permission: bool = False
    device_opt_out: bool = False
    readable_by_roles: list[Identifier] | None = None
    clauses: Clauses


class Cookie(Item):
    name: Text
    category: CookieCategory
    duration: Literal["session", "persistent"]
    lifetime_days: Annotated[int, Field(gt=0)] | None = None
    purpose: Identifier
    subjects: Annotated[list[Identifier], Field(min_length=1)]
    description: Text
    clauses: Clauses

    @model_validator(mode="after")
    def _lifetime_matches_duration(self) -> Cookie:
        if self.duration == "persistent" and self.lifetime_days is None:
            raise ValueError("a persistent cookie needs lifetime_days")
        if self.duration == "session" and self.lifetime_days is not None:
            raise ValueError("a session cookie lasts until the browser closes: drop lifetime_days")
        return self


class Purpose(Item):
    id: Identifier
    label: Text
    basis: Basis
    categories: Annotated[list[CategoryId], Field(min_length=1)]
    sale_or_sharing: bool = False
    # The data subjects this purpose may concern; every subject when absent.
    subjects: Annotated[list[Identifier], Field(min_length=1)] | None = None
    clauses: Clauses


class EnrichmentSource(Item):
    id: Identifier
    label: Text
    categories: Annotated[list[CategoryId], Field(min_length=1)]
    clauses: Clauses


class Recipient(Item):
    id: Identifier
    name: Text
    kind: RecipientKind
    postal_address: Text
    nature_of_business: Text
    country: Country
    direct_marketing: bool = False
    purposes: Annotated[list[Identifier], Field(min_length=1)]
    categories: Annotated[list[CategoryId], Field(min_length=1)]
    clauses: Clauses


class SharingRules(Item):
    never_for_third_party_commercial_purpose: bool
    law_enforcement_requires: list[Literal["legal_basis", "approver"]]
    advertisers_honour: list[Literal["opt_out", "global_privacy_control"]]
    clauses: Clauses


class TransferGround(Item):
    id: Identifier
    label: Text
    clauses: Clauses


class RetentionRule(Item):
    category: CategoryId
    keep: Literal["period", "customer_instructs"]
    months: Annotated[int, Field(gt=0)] | None = None
    clauses: Clauses

    @model_validator(mode="after")
    def _period_has_months(self) -> RetentionRule:
        if self.keep == "period" and self.months is None:
            raise ValueError("keep: period needs months")
        if self.keep == "customer_instructs" and self.months is not None:
            raise ValueError("keep: customer_instructs takes no months")
        return self


class RetentionExtension(Item):
    id: Identifier
    label: Text
    clauses: Clauses


class Retention(Item):
    rules: Annotated[list[RetentionRule], Field(min_length=1)]
    kept_longer_for: list[RetentionExtension]
    clauses: Clauses


class Right(Item):
    id: Identifier
    label: Text
    law: Text
    channel: Text
    deadline_days: Annotated[int, Field(gt=0)]
    confirm_business_days: Annotated[int, Field(gt=0)] | None = None
    extension_days: Annotated[int, Field(gt=0)] | None = None
    clauses: Clauses


class Role(Item):
    id: Identifier
    label: Text
    purposes: list[Identifier]
    permissions: list[Permission]
    # The data subjects whose data this role may use; every subject when absent.
    subjects: Annotated[list[Identifier], Field(min_length=1)] | None = None
    clauses: Clauses


class Changes(Item):
    notice: Literal["on_policy_page"]
    date_at_top: bool
    objection: Literal["close_account_and_stop_processing"]
    clauses: Clauses


class Policy(Item):
    """The whole declaration of one version of the privacy policy."""

    organisation: Organisation
    sections: Annotated[list[Section], Field(min_length=1)]
    safeguards: list[Safeguard]
    additional_terms: list[AdditionalTerms]
    categories: Annotated[list[Category], Field(min_length=1)]
    subjects: Annotated[list[Subject], Field(min_length=1)]
    collection_points: list[CollectionPoint]
    cookies: list[Cookie]
    purposes: Annotated[list[Purpose], Field(min_length=1)]
    enrichment_sources: list[EnrichmentSource]
    recipients: list[Recipient]
    sharing_rules: SharingRules
    transfer_grounds: list[TransferGround]
    retention: Retention
    rights: list[Right]
    roles: Annotated[list[Role], Field(min_length=1)]
    changes: Changes
