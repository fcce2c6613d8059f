"""Blind indexes: find a person by e-mail or visitor id without storing either in clear."""

from __future__ import annotations

import hmac
import re
import secrets
import unicodedata

from email_validator import EmailNotValidError, validate_email

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): characters that render
# as nothing, such as zero-width spaces and joiners, the soft hyphen and variation selectors.
# Left in an address, "alice\u200b@example.com" would look like Alice's address and hash to a
# different blind index: a second account for the same person, or a way around a lookup.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def normalise_email(address: str) -> str:
    """The form of an address that its blind index keys: NFKC, invisible characters
    removed, surrounding space trimmed, lower case."""
    # After NFKC, which maps some characters onto invisible ones (U+3164 and U+FFA0 to U+1160).
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", address)).strip().lower()


def is_email_address(value: str) -> bool:
    """Whether `value`, normalised, has the form of an e-mail address. Only its form: no DNS
    look-up, so that collecting never waits on the network. Addresses at special-use domains
    (`.invalid`, `.test`, `localhost`) are refused too: no mail can reach them."""
    try:
        validate_email(normalise_email(value), check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


class BlindIndex:
    """Keyed hashes (HMAC-SHA256) of normalised identifiers, one domain per kind."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _digest(self, domain: str, value: str) -> str:
        # hmac.digest is the one-shot C path: several times faster than hmac.new per call.
        return hmac.digest(self._key, f"{domain}\x00{value}".encode(), "sha256").hex()

    def email(self, address: str) -> str:
        return self._digest("email", normalise_email(address))

    def visitor(self, visitor_id: str) -> str:
        return self._digest("visitor", visitor_id.strip())

    def client(self, address: str) -> str:
        """A short digest of a client's network address, for counting its refused keys: 64
        bits tell clients apart without keeping the address."""
        return self._digest("client", address)[:16]

    def derived_key(self, purpose: str) -> bytes:
        """A key of its own for `purpose` (signing receipts, links), derived from the index
        key: one secret kept, domains kept apart."""
        return hmac.digest(self._key, b"derived-key\x00" + purpose.encode(), "sha256")

    def batch(self, content: bytes) -> str:
        """A keyed digest of an event batch: it tells a retry from a different batch without
        keeping an unkeyed hash of the personal data in it."""
        return hmac.digest(self._key, b"batch\x00" + content, "sha256").hex()


def new_person_id() -> str:
    return secrets.token_hex(16)


def new_record_ids(count: int) -> list[int]:
    """Random 63-bit ids, known before insert so that ciphertexts can be bound to them."""
    raw = secrets.token_bytes(8 * count)
    return [int.from_bytes(raw[i : i + 8], "big") >> 1 for i in range(0, 8 * count, 8)]
