"""Settings read from the environment: `CHARTER_*` variables, with embedded defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The repository's declaration of the OMNI policy; `charter init` copies it into CHARTER_HOME.
BUNDLED_POLICY = Path(__file__).resolve().parents[2] / "policies" / "omni.yaml"


class SettingsError(ValueError):
    """A setting has a value Charter cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Where Charter keeps its state and how it serves; see docs/settings.md."""

    home: Path
    host: str
    port: int
    database_url: str
    keystore_url: str
    policy_file: Path
    master_key: str | None
    max_body_bytes: int
    body_timeout_s: float
    auth_failures_per_minute: int
    public_requests_per_minute: int
    allowed_origins: frozenset[str]
    workers: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("CHARTER_HOME", "./charter-data")).expanduser().resolve()
        return cls(
            home=home,
            host=env.get("CHARTER_HOST", "127.0.0.1"),
            port=_int(env, "CHARTER_PORT", 8000, low=1, high=65535),
            database_url=env.get("CHARTER_DATABASE_URL", f"sqlite:///{home / 'charter.db'}"),
            keystore_url=env.get("CHARTER_KEYSTORE_URL", f"sqlite:///{home / 'keys.db'}"),
            policy_file=Path(env.get("CHARTER_POLICY", str(home / "policy" / "omni.yaml"))),
            master_key=env.get("CHARTER_MASTER_KEY") or None,
            public_requests_per_minute=_int(
                env, "CHARTER_PUBLIC_REQUESTS_PER_MINUTE", 120, low=1, high=1_000_000
            ),
            allowed_origins=_origins(env.get("CHARTER_ALLOWED_ORIGINS", "")),
            workers=_int(env, "CHARTER_WORKERS", 1, low=1, high=64),
            max_body_bytes=_int(
                env, "CHARTER_MAX_BODY_BYTES", 16 * 1024 * 1024, low=1024, high=2**31
            ),
            body_timeout_s=_int(env, "CHARTER_BODY_TIMEOUT_S", 30, low=1, high=3600),
            auth_failures_per_minute=_int(
                env, "CHARTER_AUTH_FAILURES_PER_MINUTE", 60, low=1, high=1_000_000
            ),
        )

    @property
    def master_key_file(self) -> Path:
        return self.home / "master.key"


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _origins(raw: str) -> frozenset[str]:
    """The web origins whose pages may call Charter's public routes: `scheme://host[:port]`."""
    found = set()
    for part in raw.split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise SettingsError(
                f"CHARTER_ALLOWED_ORIGINS lists {origin!r}, which is not scheme://host[:port]"
            )
        found.add(origin)
    return frozenset(found)
