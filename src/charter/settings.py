"""Settings read from the environment: `CHARTER_*` variables, with embedded defaults."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charter.mail.smtp import SmtpServer, SmtpUrlProblem

# Database connections a server process keeps open (CHARTER_DATABASE_POOL_SIZE).
DEFAULT_POOL_SIZE = 20

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
    # Kept apart from the databases, so that backups of the data can leave it out.
    master_key_file: Path
    max_body_bytes: int
    body_timeout_s: float
    max_buffered_bytes: int
    auth_failures_per_minute: int
    public_requests_per_minute: int
    allowed_origins: frozenset[str]
    workers: int
    # The certificate chain and its private key (PEM files) `charter serve` serves HTTPS with;
    # both or neither.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # A TLS proxy fronts Charter: plain HTTP may be served on any address, and the proxy's
    # X-Forwarded-For and X-Forwarded-Proto are believed from `trusted_proxies` only.
    behind_proxy: bool = False
    trusted_proxies: tuple[str, ...] = ()
    # SQLite's `synchronous` in WAL mode: "normal" keeps every acknowledged write through a
    # killed process, "full" also through a power cut (an fsync per commit).
    sqlite_synchronous: str = "normal"
    # Database connections each server process keeps open: as many units of work as run at
    # once, so that a steady load never opens a connection per request.
    database_pool_size: int = DEFAULT_POOL_SIZE
    # How the request log writes its lines: "text" for people, "json" (an object a line) for
    # machines.
    log_format: str = "text"
    # Where mail goes: "outbox", kept in the outbox table; "smtp", sent to `smtp_url`.
    mailer: str = "outbox"
    # `smtp://user:password@host:587?starttls=1` or `smtps://...`; read with `mail.smtp`.
    smtp_url: str | None = None
    # PEM file of the certificates that vouch for the SMTP server (else the system's).
    smtp_ca_file: Path | None = None
    smtp_timeout_s: int = 30
    mail_from: str = "privacy@localhost"
    # Tries of a message that keeps failing temporarily before it is recorded as failed.
    mail_max_attempts: int = 12
    # Where people reach Charter's public pages: the start of the links mailed to them.
    public_url: str = "http://127.0.0.1:8000"
    # Who gets the daily reminder of rights requests due within 7 days.
    privacy_officers_mail: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("CHARTER_HOME", "./charter-data")).expanduser().resolve()
        tls_cert, tls_key = _path(env, "CHARTER_TLS_CERT"), _path(env, "CHARTER_TLS_KEY")
        if (tls_cert is None) != (tls_key is None):
            raise SettingsError(
                "CHARTER_TLS_CERT and CHARTER_TLS_KEY go together: set both or neither"
            )
        return cls(
            home=home,
            host=env.get("CHARTER_HOST", "127.0.0.1"),
            port=_int(env, "CHARTER_PORT", 8000, low=1, high=65535),
            database_url=env.get("CHARTER_DATABASE_URL", f"sqlite:///{home / 'charter.db'}"),
            keystore_url=env.get("CHARTER_KEYSTORE_URL", f"sqlite:///{home / 'keys.db'}"),
            policy_file=Path(env.get("CHARTER_POLICY", str(home / "policy" / "omni.yaml"))),
            master_key=env.get("CHARTER_MASTER_KEY") or None,
            master_key_file=_path(env, "CHARTER_MASTER_KEY_FILE")
            or home / "secrets" / "master.key",
            public_requests_per_minute=_int(
                env, "CHARTER_PUBLIC_REQUESTS_PER_MINUTE", 120, low=1, high=1_000_000
            ),
            allowed_origins=_origins(env.get("CHARTER_ALLOWED_ORIGINS", "")),
            workers=_int(env, "CHARTER_WORKERS", 1, low=1, high=64),
            max_body_bytes=_int(
                env, "CHARTER_MAX_BODY_BYTES", 16 * 1024 * 1024, low=1024, high=2**31
            ),
            body_timeout_s=_int(env, "CHARTER_BODY_TIMEOUT_S", 30, low=1, high=3600),
            max_buffered_bytes=_int(
                env, "CHARTER_MAX_BUFFERED_BYTES", 64 * 1024 * 1024, low=1024, high=2**40
            ),
            auth_failures_per_minute=_int(
                env, "CHARTER_AUTH_FAILURES_PER_MINUTE", 60, low=1, high=1_000_000
            ),
            tls_cert=tls_cert,
            tls_key=tls_key,
            behind_proxy=_flag(env, "CHARTER_BEHIND_PROXY"),
            trusted_proxies=_addresses(env, "CHARTER_TRUSTED_PROXIES", ("127.0.0.1", "::1")),
            sqlite_synchronous=_choice(env, "CHARTER_SQLITE_SYNCHRONOUS", ("normal", "full")),
            database_pool_size=_int(
                env, "CHARTER_DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE, low=1, high=1000
            ),
            log_format=_choice(env, "CHARTER_LOG_FORMAT", ("text", "json")),
            **_mail(env),
        )

    @property
    def legacy_master_key_file(self) -> Path:
        """Where Charter kept the key file before it moved to `secrets/`."""
        return self.home / "master.key"


def _mail(env: Mapping[str, str]) -> dict[str, Any]:
    mailer = _choice(env, "CHARTER_MAILER", ("outbox", "smtp"))
    smtp_url = env.get("CHARTER_SMTP_URL", "").strip() or None
    if mailer == "smtp" and smtp_url is None:
        raise SettingsError("CHARTER_MAILER=smtp needs CHARTER_SMTP_URL")
    if smtp_url is not None:
        try:
            SmtpServer.parse(smtp_url)
        except SmtpUrlProblem as exc:
            # Its message names the variable, never the URL, which may hold a password.
            raise SettingsError(str(exc)) from None
    mail_from = env.get("CHARTER_MAIL_FROM", "").strip() or "privacy@localhost"
    if mail_from.count("@") != 1 or any(c.isspace() or c in "<>," for c in mail_from):
        raise SettingsError(f"CHARTER_MAIL_FROM must be one plain address, got {mail_from!r}")
    return {
        "mailer": mailer,
        "smtp_url": smtp_url,
        "smtp_ca_file": _path(env, "CHARTER_SMTP_CA_FILE"),
        "smtp_timeout_s": _int(env, "CHARTER_SMTP_TIMEOUT_S", 30, low=1, high=600),
        "mail_from": mail_from,
        "mail_max_attempts": _int(env, "CHARTER_MAIL_MAX_ATTEMPTS", 12, low=1, high=100),
        "public_url": _public_url(env),
        "privacy_officers_mail": _mail_list(env, "CHARTER_PRIVACY_OFFICERS_MAIL"),
    }


def _mail_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    found = tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())
    for address in found:
        if address.count("@") != 1 or any(c.isspace() or c in "<>;" for c in address):
            raise SettingsError(f"{name} must be plain addresses separated by commas")
    return found


def _public_url(env: Mapping[str, str]) -> str:
    raw = env.get("CHARTER_PUBLIC_URL", "").strip() or "http://127.0.0.1:8000"
    if not raw.startswith(("http://", "https://")) or any(c.isspace() for c in raw):
        raise SettingsError(f"CHARTER_PUBLIC_URL must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


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


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (the first when unset), case aside."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return allowed[0]
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


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


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw).expanduser().resolve() if raw else None


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in {"", "0", "false", "no"}:
        return False
    if raw in {"1", "true", "yes"}:
        return True
    raise SettingsError(f"{name} must be 1 or 0, got {raw!r}")


def _addresses(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated IP addresses and networks (CIDR), written as uvicorn compares them."""
    raw = env.get(name, "")
    if not raw.strip():
        return default
    found = []
    for item in (part.strip() for part in raw.split(",")):
        try:
            # uvicorn takes a network only in its strict form (192.0.2.0/24, not 192.0.2.1/24).
            found.append(
                str(ipaddress.ip_network(item, strict=False))
                if "/" in item
                else str(ipaddress.ip_address(item))
            )
        except ValueError:
            raise SettingsError(
                f"{name} must list IP addresses or networks (CIDR), got {item!r}"
            ) from None
    return tuple(found)
