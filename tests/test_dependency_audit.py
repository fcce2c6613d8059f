"""`make audit` (tools/dependency_audit.py): a known vulnerability in a pin fails it, an
advisory database out of reach is reported as skipped and passes, anything else that goes
wrong fails it.

PyPI's vulnerability feed is the network edge Charter does not own: the tests put their own
in its place, through an HTTPS proxy on this machine that answers for pypi.org itself, with a
certificate made in the test. pip-audit runs for real, on the real requirements format.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.certificates import self_signed
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[1]
AUDIT = ROOT / "tools" / "dependency_audit.py"
PIN = "jinja2==2.10\n"
ADVISORY = {
    "id": "PYSEC-0000-TEST",
    "aliases": ["GHSA-test-test-test"],
    "summary": "A sandbox escape (an advisory made up by the test)",
    "fixed_in": ["2.10.1"],
    "withdrawn": None,
}

# What the feed answers for a path: a status and a JSON body.
Answer = Callable[[str], tuple[int, dict[str, Any]]]


def _head(connection: socket.socket) -> bytes:
    """The request line and headers, up to the blank line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class _Feed(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: Answer, tls: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.answer, self.tls = answer, tls


class _Tunnel(socketserver.BaseRequestHandler):
    """CONNECT pypi.org:443, then one HTTPS request answered by the feed."""

    server: _Feed

    def handle(self) -> None:
        if not _head(self.request).startswith(b"CONNECT pypi.org:443 "):
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with self.server.tls.wrap_socket(self.request, server_side=True) as tls:
            path = _head(tls).split(b" ")[1].decode()
            status, body = self.server.answer(path)
            content = json.dumps(body).encode()
            tls.sendall(
                f"HTTP/1.1 {status} -\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(content)}\r\nConnection: close\r\n\r\n".encode()
                + content
            )


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Callable[[Answer], dict[str, str]]]:
    """`feed(answer)` starts a stand-in for PyPI's feed; the environment that reaches it."""
    cert_file, key_file = self_signed(tmp_path, "pypi.org")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    started: list[_Feed] = []

    def start(answer: Answer) -> dict[str, str]:
        server = _Feed(answer, tls)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return through_proxy(f"http://127.0.0.1:{server.server_address[1]}", cert_file)

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def through_proxy(proxy: str, trusted: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy)
    if trusted is not None:
        env["REQUESTS_CA_BUNDLE"] = str(trusted)
    return env


def audit(pins: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(pins, encoding="utf-8")
    # A cache of its own: an answer cached by an earlier run must not stand in for the feed.
    return subprocess.run(
        [sys.executable, str(AUDIT), str(requirements), "--cache-dir", str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def advisories(*found: dict[str, Any]) -> Answer:
    def answer(path: str) -> tuple[int, dict[str, Any]]:
        if path != "/pypi/jinja2/2.10/json":
            return 404, {"message": "Not Found"}
        return 200, {"info": {"name": "Jinja2", "version": "2.10"}, "vulnerabilities": list(found)}

    return answer


@pytest.mark.slow
def test_a_pin_with_a_known_vulnerability_fails(
    feed: Callable[[Answer], dict[str, str]], tmp_path: Path
) -> None:
    done = audit(PIN, tmp_path, feed(advisories(ADVISORY)))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "jinja2 2.10: PYSEC-0000-TEST (2.10.1)" in done.stdout
    assert "skipped" not in done.stdout


@pytest.mark.slow
def test_pins_without_known_vulnerabilities_pass(
    feed: Callable[[Answer], dict[str, str]], tmp_path: Path
) -> None:
    withdrawn = {**ADVISORY, "withdrawn": "2026-01-01T00:00:00Z"}

    done = audit(PIN, tmp_path, feed(advisories(withdrawn)))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no known vulnerability in 1 pinned packages" in done.stdout


@pytest.mark.slow
def test_an_index_that_serves_no_advisories_is_skipped_not_all_clear(
    feed: Callable[[Answer], dict[str, str]], tmp_path: Path
) -> None:
    # What an index mirror answers: it has the packages, not the feed. pip-audit on its own
    # reports "No known vulnerabilities found" here.
    done = audit(PIN, tmp_path, feed(lambda _: (404, {"message": "Not Found"})))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: the advisory database answered for none of the 1 pins" in done.stdout
    assert "no known vulnerability" not in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["refused", "failing"])
def test_an_advisory_database_out_of_reach_is_skipped_and_passes(
    feed: Callable[[Answer], dict[str, str]], tmp_path: Path, outage: str
) -> None:
    if outage == "refused":  # nobody listens where the proxy should be: as good as offline
        env = through_proxy(f"http://127.0.0.1:{free_port()}")
    else:
        env = feed(lambda _: (503, {"message": "Service Unavailable"}))

    done = audit(PIN, tmp_path, env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: the advisory database could not be reached" in done.stdout


@pytest.mark.slow
def test_a_requirements_file_that_is_not_pins_fails(
    feed: Callable[[Answer], dict[str, str]], tmp_path: Path
) -> None:
    done = audit("this is not == a pin\n", tmp_path, feed(advisories()))

    assert done.returncode != 0
    assert "skipped" not in done.stdout
    assert "invalid" in done.stderr
