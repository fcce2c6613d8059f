"""Requests per client and minute, for the routes anyone may call: counted in memory per
process, so a flood costs no database work."""

from __future__ import annotations

import datetime as dt
import threading


class MinuteLimit:
    """At most `limit` requests per client in each minute of the clock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._minute: dt.datetime | None = None
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, client: str, now: dt.datetime) -> int | None:
        """Count a request of `client`; None if it may go on, else the seconds to wait."""
        minute = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
        with self._lock:
            if minute != self._minute:
                # A new minute forgets the last one: the table holds one minute's clients.
                self._minute, self._counts = minute, {}
            count = self._counts.get(client, 0) + 1
            self._counts[client] = count
        if count <= self.limit:
            return None
        return max(1, 60 - int((now - minute).total_seconds()))
