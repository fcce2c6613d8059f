"""Refused keys, counted per client and minute instead of one audit entry per request.

An unauthenticated caller must not be able to grow the audit log, nor take the database's
write lock, with every request it sends. Each process counts refusals in memory, per client
(a keyed digest of its address, never the address) and per minute of the clock; a minute's
counts become one audit entry per client once the minute is over (or when the process stops).
Past the limit, a client's keyed requests are answered 429 until its minute ends, without
checking a key at all.

A process killed outright loses the counts of its last minute at most: they record requests
that were refused, never one that was acknowledged.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from charter.audit.chain import Event, record_many
from charter.clock import Clock
from charter.db import utc_text

# The known key ids one bucket names at most (a real key under attack); the count goes on.
MAX_KEY_IDS = 10


@dataclass
class Bucket:
    """The refusals of one client in one minute."""

    client: str
    minute: dt.datetime
    count: int = 0
    # Requests answered 429 without a key check, once `count` reached the limit.
    blocked: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    key_ids: list[str] = field(default_factory=list)

    def add(
        self, count: int, codes: dict[str, int], key_ids: Iterable[str], blocked: int = 0
    ) -> None:
        self.count += count
        self.blocked += blocked
        for code, times in codes.items():
            self.codes[code] = self.codes.get(code, 0) + times
        for key_id in key_ids:
            if key_id not in self.key_ids and len(self.key_ids) < MAX_KEY_IDS:
                self.key_ids.append(key_id)

    def as_event(self) -> Event:
        return Event(
            "anonymous",
            "auth:key:refused",
            f"client:{self.client}",
            outcome="refused",
            details={
                "minute": utc_text(self.minute),
                "count": self.count,
                "blocked": self.blocked,
                "codes": dict(sorted(self.codes.items())),
                "key_ids": sorted(self.key_ids),
            },
        )


def _minute(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(second=0, microsecond=0)


class FailedAttempts:
    """Refusals per client and minute, in this process; thread-safe."""

    def __init__(self, limit_per_minute: int) -> None:
        self.limit = limit_per_minute
        self._buckets: dict[tuple[str, dt.datetime], Bucket] = {}
        self._lock = threading.Lock()

    def note(self, client: str, now: dt.datetime, code: str, key_id: str | None = None) -> None:
        """Count one refusal of `client` with `code`; `key_id` if the key id exists."""
        minute = _minute(now)
        with self._lock:
            bucket = self._buckets.get((client, minute))
            if bucket is None:
                bucket = self._buckets[(client, minute)] = Bucket(client, minute)
            bucket.add(1, {code: 1}, [key_id] if key_id is not None else [])

    def retry_after(self, client: str, now: dt.datetime) -> int | None:
        """Seconds until `client` may try again, if it is past the limit this minute (the
        request asking is then counted as blocked)."""
        minute = _minute(now)
        with self._lock:
            bucket = self._buckets.get((client, minute))
            if bucket is None or bucket.count < self.limit:
                return None
            bucket.blocked += 1
        return max(1, 60 - int((now - minute).total_seconds()))

    def closed(self, now: dt.datetime, *, everything: bool = False) -> list[Bucket]:
        """Take the buckets of minutes that are over (all of them with `everything`)."""
        current = _minute(now)
        with self._lock:
            done = [key for key in self._buckets if everything or key[1] < current]
            return [self._buckets.pop(key) for key in sorted(done, key=lambda k: (k[1], k[0]))]

    def put_back(self, buckets: Iterable[Bucket]) -> None:
        """Return buckets that could not be recorded, to be tried again with the next ones."""
        with self._lock:
            for bucket in buckets:
                held = self._buckets.setdefault((bucket.client, bucket.minute), bucket)
                if held is not bucket:
                    held.add(bucket.count, bucket.codes, bucket.key_ids, bucket.blocked)


def record_refusals(session: Session, clock: Clock, buckets: Iterable[Bucket]) -> int:
    """One audit entry per bucket, in the session's transaction; how many were written."""
    events = [bucket.as_event() for bucket in buckets]
    if events:
        record_many(session, clock, events)
    return len(events)
