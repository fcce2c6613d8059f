"""What each sealed value is bound to: its associated data.

AES-GCM authenticates the associated data with the ciphertext, so a value opens only where it
was sealed. A record is bound to its row, its person, and the labels that decide who may read
it (collection point, field, category, source); an event to its row, its person, its kind and
its collection point. Change any of these in the database, or copy the value elsewhere, and it
no longer decrypts: a job application relabelled as sign-up data reads as nothing at all.

Values sealed before the labels were bound (seal version 1) are sealed again at start
(`vault.reseal`).
"""

from __future__ import annotations

from typing import Protocol

# The version of the binding that values are sealed with now.
SEAL_VERSION = 2
_SEP = "\x1f"


class RecordLabels(Protocol):
    """What a record's ciphertext is bound to: a `Record` row, or its columns."""

    @property
    def id(self) -> int: ...
    @property
    def person_id(self) -> str: ...
    @property
    def collection_point(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def source_name(self) -> str | None: ...


def record_ad(record: RecordLabels) -> bytes:
    """Associated data binding a record's ciphertext to its row, person and labels."""
    return _SEP.join(
        (
            "record:v2",
            str(record.id),
            record.person_id,
            record.collection_point,
            record.field,
            record.category,
            record.source,
            record.source_name or "",
        )
    ).encode()


def event_prefix(person_id: str, kind: str, collection_point: str) -> bytes:
    """The associated data shared by a person's events of one kind and point; a batch
    computes it once and binds each event with `event_ad_of(prefix, uid)`."""
    return _SEP.join(("event:v2", person_id, kind, collection_point, "")).encode()


def event_ad_of(prefix: bytes, uid: int) -> bytes:
    return prefix + uid.to_bytes(8, "big")


def event_ad(uid: int, person_id: str, kind: str, collection_point: str) -> bytes:
    """Associated data binding an event's ciphertext to its row (`uid`), person, kind and
    collection point."""
    return event_ad_of(event_prefix(person_id, kind, collection_point), uid)


def legacy_record_ad(record_id: int, person_id: str) -> bytes:
    """The binding of seal version 1: the row and the person only."""
    return f"record:{record_id}:{person_id}".encode()


def legacy_event_ad(uid: int, person_id: str) -> bytes:
    """The binding of seal version 1: the row and the person only."""
    return b"event:" + person_id.encode() + b":" + uid.to_bytes(8, "big")
