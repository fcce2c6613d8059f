"""What the running service holds for its requests: settings, policy, database, clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from charter.clock import Clock
from charter.db import Database
from charter.policy.compiled import CompiledPolicy
from charter.policy.render import render_html
from charter.settings import Settings
from charter.vault.keystore import KeyStore


@dataclass
class Runtime:
    settings: Settings
    policy: CompiledPolicy
    db: Database
    keys: KeyStore
    clock: Clock
    _page: str | None = field(default=None, repr=False)

    def policy_page(self) -> str:
        """The rendered policy page; rendered once per loaded policy."""
        if self._page is None:
            self._page = render_html(self.policy.policy)
        return self._page
