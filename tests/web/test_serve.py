"""`charter serve` as operators start it: HTTPS with a certificate, plain HTTP only on a
loopback address or behind a TLS proxy, forwarded headers believed only from the proxies
named, and a port that is taken failing before anything is written."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from charter.audit.models import AuditEntry
from charter.db import Database
from tests.certificates import self_signed
from tests.serving import CHARTER, Server, charter

Run = subprocess.CompletedProcess[str]


def serve_once(env: dict[str, str]) -> Run:
    """`charter serve` expected to stop on its own (a refusal), with its output."""
    return subprocess.run(
        [CHARTER, "serve"], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def audit_entries(db: Database) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def loaded(db: Database) -> int:
    """How many times a process recorded the policy it loaded."""
    with db.reading() as session:
        query = select(func.count()).where(AuditEntry.action == "policy:version:loaded")
        return session.scalar(query) or 0


def assert_refused_with(done: Run, message: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "Charter" not in done.stdout  # never announced


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path, "charter.example.com", ip="127.0.0.1")


# --- TLS -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_over_https_with_the_configured_certificate(
    environment: dict[str, str],
    server: Callable[[], Server],
    certificate: tuple[Path, Path],
    workers: str,
) -> None:
    cert_file, key_file = certificate
    environment.update(
        CHARTER_TLS_CERT=str(cert_file), CHARTER_TLS_KEY=str(key_file), CHARTER_WORKERS=workers
    )
    charter(environment, "init")
    running = server()
    trusted = ssl.create_default_context(cafile=str(cert_file))

    answer = httpx.get(f"{running.base}/healthz", verify=trusted)

    assert running.base.startswith("https://127.0.0.1:")
    assert answer.status_code == 200
    assert f"on {running.base}" in running.log.read_text()
    with pytest.raises(httpx.ConnectError):  # only this certificate is trusted: no other
        httpx.get(f"{running.base}/healthz")
    with pytest.raises(httpx.TransportError):  # and no plain HTTP on the same port
        httpx.get(running.base.replace("https://", "http://") + "/healthz")


@pytest.mark.slow
def test_a_certificate_that_does_not_load_is_refused_before_anything_is_written(
    environment: dict[str, str], committed_db: Database, certificate: tuple[Path, Path]
) -> None:
    cert_file, _ = certificate
    charter(environment, "init")
    before = audit_entries(committed_db)
    environment.update(CHARTER_TLS_CERT=str(cert_file), CHARTER_TLS_KEY=str(cert_file))

    done = serve_once(environment)

    assert_refused_with(done, f"cannot serve TLS with CHARTER_TLS_CERT={cert_file}")
    assert audit_entries(committed_db) == before


# --- Plain HTTP only on loopback or behind a proxy -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])  # noqa: S104 - refused
def test_a_non_loopback_address_without_tls_is_refused_and_nothing_is_written(
    environment: dict[str, str], committed_db: Database, host: str
) -> None:
    charter(environment, "init")
    before = audit_entries(committed_db)
    environment["CHARTER_HOST"] = host
    fresh = {**environment, "CHARTER_HOME": str(Path(environment["CHARTER_HOME"]) / "unused")}

    done = serve_once(environment)
    nowhere = serve_once(fresh)

    assert_refused_with(
        done, f"refusing to serve {host}:{environment['CHARTER_PORT']} in clear text"
    )
    assert nowhere.returncode == 2
    assert "no Charter data folder" in nowhere.stderr
    assert audit_entries(committed_db) == before
    assert not Path(fresh["CHARTER_HOME"]).exists()


@pytest.mark.slow
@pytest.mark.parametrize("through", ["tls", "proxy"])
def test_tls_or_a_proxy_in_front_lets_a_non_loopback_address_through(
    environment: dict[str, str], certificate: tuple[Path, Path], through: str
) -> None:
    cert_file, key_file = certificate
    charter(environment, "init")
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: past the check, the bind fails,
    # and nothing is ever served on a public interface by the test.
    environment["CHARTER_HOST"] = "192.0.2.1"
    if through == "tls":
        environment.update(CHARTER_TLS_CERT=str(cert_file), CHARTER_TLS_KEY=str(key_file))
    else:
        environment["CHARTER_BEHIND_PROXY"] = "1"

    done = serve_once(environment)

    assert_refused_with(done, f"cannot listen on 192.0.2.1:{environment['CHARTER_PORT']}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("behind_proxy", "trusted", "scheme"),
    [
        ("", "", "http"),  # no proxy: X-Forwarded-* are the client's words, even from here
        ("1", "127.0.0.1", "https"),
        ("1", "10.0.0.0/8, 127.0.0.0/8", "https"),
        ("1", "192.0.2.0/24", "http"),  # a proxy elsewhere: this connection is not it
    ],
)
def test_forwarded_headers_are_believed_only_from_the_trusted_proxies(
    environment: dict[str, str],
    server: Callable[[], Server],
    behind_proxy: str,
    trusted: str,
    scheme: str,
) -> None:
    environment.update(CHARTER_BEHIND_PROXY=behind_proxy, CHARTER_TRUSTED_PROXIES=trusted)
    charter(environment, "init")
    running = server()

    # A trailing slash is redirected to the route: the Location names the scheme Charter
    # believes the client used.
    answer = httpx.get(
        f"{running.base}/v1/audit/",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        follow_redirects=False,
    )

    assert answer.status_code == 307
    assert (
        answer.headers["location"] == f"{scheme}://127.0.0.1:{environment['CHARTER_PORT']}/v1/audit"
    )


# --- The port first ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_already_taken_fails_in_one_line_and_writes_nothing(
    environment: dict[str, str], committed_db: Database, workers: str
) -> None:
    environment["CHARTER_WORKERS"] = workers
    charter(environment, "init")
    before = audit_entries(committed_db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(environment["CHARTER_PORT"])))
        taken.listen()

        done = serve_once(environment)

    assert_refused_with(done, f"cannot listen on 127.0.0.1:{environment['CHARTER_PORT']}")
    assert audit_entries(committed_db) == before


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_cannot_share_the_port_of_a_first(
    environment: dict[str, str],
    server: Callable[[], Server],
    committed_db: Database,
    workers: str,
) -> None:
    environment["CHARTER_WORKERS"] = workers
    charter(environment, "init")
    server()
    # Each worker boots on its own, and records the policy it loaded: the supervisor's check
    # and each worker's, after `init`'s, before counting what the second server adds.
    deadline = time.monotonic() + 60
    while loaded(committed_db) < 2 + (int(workers) if int(workers) > 1 else 0):
        assert time.monotonic() < deadline, "the first server's workers did not boot"
        time.sleep(0.05)  # polling for the workers to boot, not measuring
    before = audit_entries(committed_db)

    done = serve_once(environment)

    assert_refused_with(done, f"cannot listen on 127.0.0.1:{environment['CHARTER_PORT']}")
    assert audit_entries(committed_db) == before
