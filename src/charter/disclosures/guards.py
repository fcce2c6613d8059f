"""The guards of a disclosure: may these categories of a person's data go to this recipient
for this purpose, and if not, why (C21, C22, C24).

A disclosure is decided in two steps. `guard_disclosure` checks, once per disclosure, what
depends only on the request: the recipient, the purpose and the categories are declared
together; nothing goes to a third party for its own commercial purposes; law enforcement
and government receive data only on a legal process, approved by a privacy officer who is
not the requester; a recipient in another country only on one of the transfer grounds. The
`DisclosureGuard` it returns then decides each person from their state (`PersonState`) with
a few look-ups: erased or objecting, their opt-outs, Global Privacy Control, their recorded
consent. Nothing here touches the database, and no reason names a person or a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from charter.access.decide import PersonState
from charter.errors import Unprocessable
from charter.policy.compiled import GPC_TOPIC, CompiledPolicy
from charter.policy.schema import Basis, Recipient

# The role whose holder approves a disclosure to law enforcement or government; the same
# role manages staff (`staff.service`).
PRIVACY_OFFICER = "privacy_officer"
# The transfer grounds of omni.yaml that carry a rule of their own.
CONSENT_GROUND = "consent"
BUSINESS_TRANSFER_GROUND = "business_transfer"
# The recipients that receive nobody who opted out of sale or sharing or sent GPC (C22).
ADVERTISING_KINDS = frozenset({"advertiser", "ad_auditor"})
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class StaffInRole:
    """A staff member as a disclosure names them: by id, with their role in the policy."""

    staff_id: int
    role: str


@dataclass(frozen=True, slots=True)
class DisclosureRequest:
    """One disclosure or transfer, as asked for; the same for every person in it."""

    recipient: str
    purpose: str
    # Categories or groups of categories; a group stands for its leaves declared for both
    # the recipient and the purpose.
    categories: tuple[str, ...]
    requester: StaffInRole
    # Where the data goes this time; the recipient's declared country when None.
    country: str | None = None
    # A transfer ground of the policy (`transfer_grounds`), or None.
    ground: str | None = None
    # The reference of the subpoena, court order or other legal request, or None.
    legal_process: str | None = None
    approver: StaffInRole | None = None
    # The requester says the recipient will use the data for its own commercial purposes,
    # not for the purpose on OMNI's behalf.
    for_recipients_own_purposes: bool = False


@dataclass(frozen=True, slots=True)
class DisclosureDecision:
    """`allowed`, or a refusal with a stable `code` and a `reason` in words."""

    allowed: bool
    code: str
    reason: str
    # An allowed disclosure for the recipient's own direct marketing: one for the Shine the
    # Light report (C25).
    shine_the_light: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "code": self.code,
            "reason": self.reason,
            "shine_the_light": self.shine_the_light,
        }


def _refused(code: str, reason: str) -> DisclosureDecision:
    return DisclosureDecision(False, code, reason)


# The refusals of a person, the same for every disclosure: made once, shared.
PERSON_ERASED = _refused("person_erased", "the person was erased")
PERSON_OBJECTED = _refused(
    "person_objected", "the person objected to the policy; their data is no longer processed"
)
GPC_SIGNAL = _refused(
    "gpc_signal", "the person opted out of sale and sharing by Global Privacy Control"
)
OPTED_OUT_OF_SALE_OR_SHARING = _refused(
    "opted_out_of_sale_or_sharing", "the person opted out of sale and sharing"
)


def is_direct_marketing(policy: CompiledPolicy, recipient: Recipient, purpose: str) -> bool:
    """Whether a disclosure to `recipient` for `purpose` is for the recipient's own direct
    marketing: the policy marks the recipient so (`direct_marketing`), and the purpose is
    one the person may opt out of or must consent to. A purpose of the service itself
    (`basis: service`) is never the recipient's marketing."""
    basis = policy.purpose_basis.get(purpose)
    return recipient.direct_marketing and basis is not None and basis != "service"


class DisclosureGuard:
    """The decision of one disclosure request (`decision`), and of each person in it
    (`decide`). Build it with `guard_disclosure`."""

    __slots__ = (
        "_allowed",
        "_basis",
        "_consent_ground",
        "_honour_gpc",
        "_policy",
        "_purpose_topic",
        "_sale_topics",
        "_subjects",
        "categories",
        "country",
        "cross_border",
        "decision",
        "recipient",
        "request",
    )

    def __init__(self, policy: CompiledPolicy, request: DisclosureRequest) -> None:
        if not request.categories:
            raise Unprocessable("a disclosure names at least one category", code="no_categories")
        country = request.country
        if country is not None and not _COUNTRY.match(country):
            raise Unprocessable(
                "a country is an ISO 3166-1 alpha-2 code, such as US or IE", code="invalid_country"
            )
        self._policy = policy
        self.request = request
        self.recipient: Recipient | None = policy.recipients.get(request.recipient)
        if country is None and self.recipient is not None:
            country = self.recipient.country
        # Where the data goes, and whether that is out of OMNI's country (a transfer, C24).
        self.country: str | None = country
        self.cross_border = country is not None and country != policy.policy.organisation.country
        refusal, leaves = _request_refusal(
            policy, request, self.recipient, cross_border=self.cross_border
        )
        # The leaf categories disclosed; empty when the request is refused.
        self.categories: frozenset[str] = frozenset() if refusal else leaves
        direct_marketing = self.recipient is not None and is_direct_marketing(
            policy, self.recipient, request.purpose
        )
        self.decision = refusal or DisclosureDecision(
            True,
            "allowed",
            "the policy allows this disclosure; each person is decided by their own state",
            shine_the_light=direct_marketing,
        )
        self._allowed = DisclosureDecision(
            True,
            "allowed",
            "the policy and the person's choices allow this disclosure",
            shine_the_light=direct_marketing,
        )
        self._purpose_topic = "purpose:" + request.purpose
        self._basis: Basis | None = policy.purpose_basis.get(request.purpose)
        self._subjects = policy.purpose_subjects.get(request.purpose)
        sale_or_sharing = request.purpose in policy.sale_or_sharing
        advertising = self.recipient is not None and self.recipient.kind in ADVERTISING_KINDS
        honoured = policy.policy.sharing_rules.advertisers_honour
        # GPC opts the person out of every purpose of sale or sharing, whoever receives it,
        # and an advertiser or ad auditor receives nobody who sent it (C22).
        self._honour_gpc = sale_or_sharing or (advertising and "global_privacy_control" in honoured)
        # An advertiser or ad auditor receives nobody who opted out of any purpose of sale
        # or sharing (C22); the opt-out of the purpose itself is kept by its basis below.
        self._sale_topics: tuple[str, ...] = (
            tuple(sorted("purpose:" + p for p in policy.sale_or_sharing))
            if advertising and "opt_out" in honoured
            else ()
        )
        self._consent_ground = request.ground == CONSENT_GROUND

    def decide(self, person: PersonState) -> DisclosureDecision:
        """The decision for one person in this disclosure: the request's refusal if it is
        refused, else the person's own state decides. Cheap: no allocation when allowed."""
        if not self.decision.allowed:
            return self.decision
        if person.erased:
            return PERSON_ERASED
        if person.objected:
            return PERSON_OBJECTED
        return self._person_refusal(person) or self._allowed

    def _person_refusal(self, person: PersonState) -> DisclosureDecision | None:
        """A refusal by the data subjects the purpose covers, or by the person's choices."""
        subjects = self._subjects
        if subjects is not None and not self._policy.covers(subjects, person.kind):
            return _refused(
                "subject_not_covered",
                f"the purpose covers {', '.join(sorted(subjects))} only, not this person "
                f"({person.kind or 'unknown kind'})",
            )
        choices = person.choices
        if choices:
            if self._honour_gpc and choices.get(GPC_TOPIC):
                return GPC_SIGNAL
            for topic in self._sale_topics:
                if choices.get(topic) is False:
                    return OPTED_OUT_OF_SALE_OR_SHARING
        return self._choice_refusal(choices.get(self._purpose_topic))

    def _choice_refusal(self, choice: bool | None) -> DisclosureDecision | None:
        """A refusal by the person's choice on the purpose, by its basis and by the ground."""
        if self._basis == "opt_out" and choice is False:
            return _refused("person_opted_out", "the person opted out of the purpose")
        if self._basis == "consent" and choice is not True:
            return _refused("consent_required", "the purpose needs the person's consent, not given")
        if self._consent_ground and choice is not True:
            return _refused(
                "consent_not_recorded",
                "the transfer rests on the person's consent, and none to the purpose is recorded",
            )
        return None


def guard_disclosure(policy: CompiledPolicy, request: DisclosureRequest) -> DisclosureGuard:
    """Check a disclosure request once (`DisclosureGuard.decision`), ready to decide each
    person in it (`DisclosureGuard.decide`). Raises `Unprocessable` for a request that is
    malformed rather than refused: no category, or a country that is not a country code."""
    return DisclosureGuard(policy, request)


def decide_disclosure(
    policy: CompiledPolicy, request: DisclosureRequest, person: PersonState
) -> DisclosureDecision:
    """The decision of a disclosure of one person: the request, then the person."""
    return guard_disclosure(policy, request).decide(person)


# --- the checks of the request --------------------------------------------------------------


def _request_refusal(
    policy: CompiledPolicy,
    request: DisclosureRequest,
    recipient: Recipient | None,
    *,
    cross_border: bool,
) -> tuple[DisclosureDecision | None, frozenset[str]]:
    """The first refusal of the request, in the order the guards are checked, and the leaf
    categories it discloses if the declaration allows them."""
    if recipient is None:
        reason = f"'{request.recipient}' is not a recipient of the policy"
        return _refused("recipient_not_declared", reason), frozenset()
    declared = _declared(policy, recipient, request)
    if isinstance(declared, DisclosureDecision):
        return declared, frozenset()
    refusal = (
        _never_sold_refusal(policy, recipient, request)
        or _legal_process_refusal(policy, recipient, request)
        or _transfer_refusal(policy, recipient, request, cross_border=cross_border)
    )
    return refusal, declared


def _declared(
    policy: CompiledPolicy, recipient: Recipient, request: DisclosureRequest
) -> DisclosureDecision | frozenset[str]:
    """The leaf categories disclosed, or a refusal unless the recipient, the purpose and
    every category are declared together."""
    purpose = request.purpose
    if purpose not in policy.purpose_basis:
        return _refused("purpose_not_for_recipient", f"'{purpose}' is not a purpose of the policy")
    if purpose not in recipient.purposes:
        return _refused(
            "purpose_not_for_recipient",
            f"the policy does not disclose to '{recipient.id}' for '{purpose}'",
        )
    allowed = recipient_leaves(policy, recipient) & policy.purpose_categories[purpose]
    leaves: set[str] = set()
    for category in request.categories:
        group = policy.group_leaves.get(category)
        if group is None and category not in policy.categories:
            return _refused(
                "category_not_for_recipient", f"'{category}' is not a category of the policy"
            )
        found = group & allowed if group is not None else {category} & allowed
        if not found:
            return _refused(
                "category_not_for_recipient",
                f"the policy does not disclose '{category}' to '{recipient.id}' for '{purpose}'",
            )
        leaves |= found
    return frozenset(leaves)


def recipient_leaves(policy: CompiledPolicy, recipient: Recipient) -> frozenset[str]:
    """The leaf categories the policy declares for `recipient`."""
    return frozenset(leaf for ref in recipient.categories for leaf in policy.expand(ref))


def _never_sold_refusal(
    policy: CompiledPolicy, recipient: Recipient, request: DisclosureRequest
) -> DisclosureDecision | None:
    """Never to a third party for its own commercial purposes (C21). Only an affiliate's
    direct marketing, as the policy marks it, is a recipient's own purpose that is allowed."""
    if not policy.policy.sharing_rules.never_for_third_party_commercial_purpose:
        return None
    direct_marketing = is_direct_marketing(policy, recipient, request.purpose)
    own_purposes = request.for_recipients_own_purposes or direct_marketing
    if own_purposes and not (recipient.kind == "affiliate" and direct_marketing):
        return _refused(
            "never_sold",
            "OMNI never shares, sells, rents or trades personal data with a third party for "
            "its own commercial purposes",
        )
    return None


def _legal_process_refusal(
    policy: CompiledPolicy, recipient: Recipient, request: DisclosureRequest
) -> DisclosureDecision | None:
    """Law enforcement and government only on a legal process, approved by a privacy officer
    who is not the requester, as the sharing rules require (C22)."""
    if recipient.kind != "law_enforcement":
        return None
    requires = policy.policy.sharing_rules.law_enforcement_requires
    if "legal_basis" in requires and not (request.legal_process or "").strip():
        return _refused(
            "legal_process_required",
            "a disclosure to law enforcement or government needs the reference of its legal "
            "process (subpoena, court order or other legal request)",
        )
    if "approver" not in requires:
        return None
    approver = request.approver
    if approver is None or approver.role != PRIVACY_OFFICER:
        return _refused(
            "approval_required",
            "a disclosure to law enforcement or government needs the approval of a staff "
            f"member in the role '{PRIVACY_OFFICER}'",
        )
    if approver.staff_id == request.requester.staff_id:
        return _refused(
            "approver_is_requester",
            "the approver of a disclosure to law enforcement or government must not be its "
            "requester",
        )
    return None


def _transfer_refusal(
    policy: CompiledPolicy, recipient: Recipient, request: DisclosureRequest, *, cross_border: bool
) -> DisclosureDecision | None:
    """A ground named must be one of the policy's; a transfer out of OMNI's country needs
    one (C24); a business transfer goes to an acquirer only."""
    ground = request.ground
    if ground is None:
        if cross_border:
            return _refused(
                "transfer_ground_required",
                f"'{recipient.id}' is outside {policy.policy.organisation.country}: a transfer "
                "across borders needs one of the policy's transfer grounds",
            )
        return None
    if ground not in {g.id for g in policy.policy.transfer_grounds}:
        return _refused(
            "unknown_transfer_ground", f"'{ground}' is not a transfer ground of the policy"
        )
    if ground == BUSINESS_TRANSFER_GROUND and recipient.kind != "acquirer":
        return _refused(
            "business_transfer_to_non_acquirer",
            f"a business transfer goes to an acquirer only, and '{recipient.id}' is not one",
        )
    return None
