"""Blind indexes: find a person by e-mail or visitor id without storing either in clear."""

from __future__ import annotations

import hmac
import secrets
import unicodedata


class BlindIndex:
    """Keyed hashes (HMAC-SHA256) of normalised identifiers, one domain per kind."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _digest(self, domain: str, value: str) -> str:
        # hmac.digest is the one-shot C path: several times faster than hmac.new per call.
        return hmac.digest(self._key, f"{domain}\x00{value}".encode(), "sha256").hex()

    def email(self, address: str) -> str:
        normalised = unicodedata.normalize("NFKC", address).strip().lower()
        return self._digest("email", normalised)

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
