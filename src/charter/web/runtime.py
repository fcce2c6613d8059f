"""What the running service holds for its requests: settings, policy, database, clock."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from starlette.types import Scope

from charter.clock import Clock
from charter.consent.receipts import ReceiptSigner
from charter.db import Database
from charter.loop_reads import LoopReads
from charter.loop_writes import LoopWrites
from charter.mail.outbox import OUTBOX_KEY_PURPOSE, Outbox
from charter.mail.sender import Sender, sender_for
from charter.policy.compiled import CompiledPolicy
from charter.policy.render import render_html
from charter.requests.service import Links, Replies
from charter.settings import Settings
from charter.staff.attempts import FailedAttempts
from charter.vault.identifiers import BlindIndex
from charter.vault.keystore import KeyStore
from charter.web.ratelimit import MinuteLimit


@dataclass
class Runtime:
    settings: Settings
    policy: CompiledPolicy
    db: Database
    keys: KeyStore
    clock: Clock
    attempts: FailedAttempts = field(init=False)
    signer: ReceiptSigner = field(init=False)
    index: BlindIndex = field(init=False, repr=False)
    public_limit: MinuteLimit = field(init=False)
    # Reads on the event loop, on PostgreSQL (see charter.loop_reads).
    loop_reads: LoopReads | None = field(init=False, repr=False)
    # Units of work on the event loop, on PostgreSQL (see charter.loop_writes).
    loop_writes: LoopWrites | None = field(init=False, repr=False)
    # The background sender of the outbox; `outbox` is where features queue their mail.
    mail: Sender = field(init=False, repr=False)
    _page: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.attempts = FailedAttempts(self.settings.auth_failures_per_minute)
        self.index = BlindIndex(self.keys.index_key())
        self.public_limit = MinuteLimit(self.settings.public_requests_per_minute)
        self.signer = ReceiptSigner(self.index.derived_key("consent-receipts"))
        self.mail = sender_for(
            self.settings, self.db, self.clock, self.index.derived_key(OUTBOX_KEY_PURPOSE)
        )
        self.loop_reads = (
            None
            if self.db.is_sqlite
            else LoopReads(self.db.engine.url.render_as_string(hide_password=False))
        )
        self.loop_writes = (
            None
            if self.db.is_sqlite
            else LoopWrites(self.db.engine, pool_size=self.settings.database_pool_size)
        )

    @property
    def outbox(self) -> Outbox:
        return self.mail.outbox

    @functools.cached_property
    def links(self) -> Links:
        """The signer of the verification links mailed to people about their requests."""
        return Links(self.index, self.settings.public_url)

    @functools.cached_property
    def replies(self) -> Replies:
        """The sealer of the addresses requests are answered at."""
        return Replies(self.index)

    def policy_page(self) -> str:
        """The rendered policy page; rendered once per loaded policy."""
        if self._page is None:
            self._page = render_html(self.policy.policy)
        return self._page

    def client_ref(self, scope: Scope) -> str:
        """How the audit log and the limits name the client of a request: a keyed digest of
        its address, never the address."""
        client = scope.get("client")
        return self.index.client(client[0] if client else "")
