"""AES-256-GCM for personal values: one data key per person, wrapped by the master key.

Every ciphertext is bound to where it belongs by its associated data (the record and the
person), so a value copied into another row or person does not decrypt.
"""

from __future__ import annotations

import base64
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from charter.errors import RecordedRefusal

NONCE_BYTES = 12
KEY_BYTES = 32


class DecryptionFailed(Exception):
    """A ciphertext did not authenticate: wrong key, wrong place, or altered."""


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def decode_key(text: str) -> bytes:
    """A master key from its text form; raises ValueError if it is not 32 bytes of base64."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (ValueError, TypeError):
        raise ValueError("the master key is not base64 text") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"the master key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def fresh_nonces(count: int) -> list[bytes]:
    """`count` random nonces from one call to the OS: the cheap way to seal a whole batch."""
    pool = os.urandom(NONCE_BYTES * count)
    return [pool[i : i + NONCE_BYTES] for i in range(0, NONCE_BYTES * count, NONCE_BYTES)]


class Sealer:
    """Encrypts and decrypts under one key. `seal_many` draws all nonces in one call."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, associated: bytes, nonce: bytes | None = None) -> bytes:
        """Encrypt; `nonce` only from `fresh_nonces`, which never repeats one."""
        if nonce is None:
            nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
        except (InvalidTag, ValueError):
            # ValueError: shorter than a nonce, or otherwise not a sealed value at all.
            raise DecryptionFailed("the value does not decrypt here") from None


class KeyDamaged(RecordedRefusal):
    """A person's data key in the key store does not unwrap: it was altered there. Nothing
    new is sealed for them until it is looked into; the audit log keeps each such find."""

    status = 503
    code = "key_damaged"
    action = "vault:data_key:damaged"


class DamagedSealer(Sealer):
    """Stands for a person whose data key does not unwrap: nothing of theirs opens, and
    nothing new is sealed."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(bytes(KEY_BYTES))

    def seal(self, plaintext: bytes, associated: bytes, nonce: bytes | None = None) -> bytes:  # noqa: ARG002 - Sealer's signature
        raise KeyDamaged("the person's data key is damaged; nothing can be sealed for them")

    def open(self, sealed: bytes, associated: bytes) -> bytes:  # noqa: ARG002 - Sealer's signature
        raise DecryptionFailed("the person's data key is damaged")
