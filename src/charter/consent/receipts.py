"""Consent receipts: how a service may forward a person's own "yes" for one topic.

A service may narrow what it may do with a person's data on its own word, never widen it
(an opt-in, a consent, lifting an opt-out). When a person says yes in a service's own page,
their browser asks Charter for a receipt naming that topic and the version of the policy
text it was shown; the service forwards the receipt with the choice. A receipt is signed by
Charter, lives a few minutes, and is taken once: a copied or replayed receipt, or one for
another topic or person, widens nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from charter.clock import Clock
from charter.consent.models import UsedReceipt
from charter.errors import Forbidden

RECEIPT_LIFETIME = dt.timedelta(minutes=10)
_PREFIX = "crc1"


class ReceiptRefused(Forbidden):
    """The receipt does not stand for the person's consent to this topic."""


@dataclass(frozen=True)
class ReceiptClaims:
    """What a receipt says: who (the person Charter found by the browser's visitor cookie),
    which topic, the policy version whose text was shown, and until when it holds."""

    receipt_id: str
    person_id: str
    topic: str
    policy_version: str
    expires_at: dt.datetime


class ReceiptSigner:
    """Signs and checks receipts with a key of Charter's own (HMAC-SHA256)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, b"consent-receipt\x00" + payload, "sha256")

    def issue(
        self, clock: Clock, *, person_id: str, topic: str, policy_version: str
    ) -> tuple[str, ReceiptClaims]:
        """A new receipt for `topic`, and what it claims."""
        claims = ReceiptClaims(
            secrets.token_hex(12), person_id, topic, policy_version, clock.now() + RECEIPT_LIFETIME
        )
        payload = json.dumps(
            [
                claims.receipt_id,
                claims.person_id,
                claims.topic,
                claims.policy_version,
                int(claims.expires_at.timestamp()),
            ],
            separators=(",", ":"),
        ).encode()
        token = f"{_PREFIX}.{_b64(payload)}.{_b64(self._sign(payload))}"
        return token, claims

    def open(self, token: str, clock: Clock) -> ReceiptClaims:
        """The claims of a receipt Charter signed that has not expired; refused otherwise."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _PREFIX:
            raise ReceiptRefused("the consent receipt is malformed", code="receipt_invalid")
        try:
            payload, signature = _unb64(parts[1]), _unb64(parts[2])
        except ValueError:
            raise ReceiptRefused(
                "the consent receipt is malformed", code="receipt_invalid"
            ) from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise ReceiptRefused("the consent receipt is not Charter's", code="receipt_invalid")
        receipt_id, person_id, topic, version, expires = json.loads(payload)
        claims = ReceiptClaims(
            receipt_id, person_id, topic, version, dt.datetime.fromtimestamp(expires, dt.UTC)
        )
        if claims.expires_at <= clock.now():
            raise ReceiptRefused("the consent receipt has expired", code="receipt_expired")
        return claims


def take_receipt(session: Session, clock: Clock, claims: ReceiptClaims) -> None:
    """Mark the receipt used, in the caller's transaction: a second use is refused."""
    try:
        with session.begin_nested():
            session.add(
                UsedReceipt(id=claims.receipt_id, used_at=clock.now(), expires_at=claims.expires_at)
            )
    except IntegrityError:
        raise ReceiptRefused("the consent receipt was used already", code="receipt_used") from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError("not base64") from None
