"""The door before the body, against the real server (issue 16, item 2): an anonymous caller
that announces or streams a huge body, or sends it slowly, is answered at once and costs the
server no memory; a keyed sender too slow with its body gets 408; the health check answers
throughout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import httpx
import psutil
import pytest

from tests.serving import Server, charter, service_key

pytestmark = pytest.mark.slow

HUGE = 16 * 1024 * 1024 + 512 * 1024  # the 16.5 MB body of the review


def raw_request(
    base: str, head: str, body_parts: list[bytes], *, pause: threading.Event | None = None
) -> bytes:
    """Send a request by hand (so that a body can be cut short or held back); the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the body was all sent: what is tested
        if pause is not None:
            pause.wait(timeout=30)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def head_of(request_line: str, **headers: str | int) -> str:
    lines = [request_line, "Host: x", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def running(environment: dict[str, str], server: Callable[[], Server]) -> Server:
    environment["CHARTER_BODY_TIMEOUT_S"] = "1"
    charter(environment, "init")
    return server()


def test_an_anonymous_huge_body_is_refused_from_the_headers_and_memory_stays_flat(
    running: Server,
) -> None:
    process = psutil.Process(running.process.pid)
    before = process.memory_info().rss
    declared = head_of("POST /v1/events HTTP/1.1", Content_Length=HUGE)
    streamed = head_of("POST /v1/events HTTP/1.1", Transfer_Encoding="chunked")
    body = b"[" + b"[]," * (HUGE // 3) + b"[]]"
    chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    answers: list[bytes] = []

    def send(head: str, part: bytes) -> None:
        answers.append(raw_request(running.base, head, [part]))

    senders = [
        threading.Thread(target=send, args=(declared, body)),
        threading.Thread(target=send, args=(declared, body)),
        threading.Thread(target=send, args=(streamed, chunk)),
        threading.Thread(target=send, args=(streamed, chunk)),
    ]
    for sender in senders:
        sender.start()
    health = httpx.get(f"{running.base}/healthz", timeout=10)
    for sender in senders:
        sender.join(timeout=60)

    assert health.status_code == 200
    assert sorted(status_of(a) for a in answers) == [401, 401, 413, 413]
    # Nothing of the four bodies was parsed or held: a few MB of buffers at most.
    assert process.memory_info().rss - before < 40 * 1024 * 1024


def test_a_slow_body_without_a_key_is_refused_before_it_arrives(running: Server) -> None:
    head = head_of("PUT /v1/people/someone/choices HTTP/1.1", Content_Length=100)

    answer = raw_request(running.base, head, [b'{"choices": '])

    assert status_of(answer) == 401


def test_a_slow_body_with_a_key_gets_408(environment: dict[str, str], running: Server) -> None:
    key = service_key(environment)["Authorization"]
    head = head_of("PUT /v1/people/someone/choices HTTP/1.1", Authorization=key, Content_Length=100)

    answer = raw_request(running.base, head, [b'{"choices": '])

    assert status_of(answer) == 408
    assert b"body_timeout" in answer or b"408" in answer


def test_bodies_past_the_memory_budget_are_told_to_come_back_and_small_ones_still_pass(
    environment: dict[str, str], server: Callable[[], Server]
) -> None:
    environment["CHARTER_BODY_TIMEOUT_S"] = "3"
    environment["CHARTER_MAX_BUFFERED_BYTES"] = str(200 * 1024)
    charter(environment, "init")
    running = server()
    key = service_key(environment)["Authorization"]
    held = threading.Event()
    slow: list[bytes] = []
    # A keyed sign-up announcing 150 KiB and sending a little of it holds its reservation.
    holder = threading.Thread(
        target=lambda: slow.append(
            raw_request(
                running.base,
                head_of("POST /v1/collect HTTP/1.1", Authorization=key, Content_Length=150_000),
                [b'{"collection_point": '],
                pause=held,
            )
        )
    )
    holder.start()
    try:
        # Until the held request is taken in, the big one passes the door (and is refused
        # for its body): tried again until it is, however slow the machine, within a bound.
        deadline = time.monotonic() + 30
        while True:
            big = raw_request(
                running.base,
                head_of("POST /v1/collect HTTP/1.1", Authorization=key, Content_Length=100_000),
                [b" " * 100_000],
            )
            if status_of(big) == 503 or time.monotonic() > deadline:
                break
        small = httpx.put(
            f"{running.base}/v1/people/nobody/choices",
            headers={"Authorization": key},
            json={"choices": {"cookie:performance": False}},
            timeout=10,
        )
    finally:
        held.set()
        holder.join(timeout=30)

    assert status_of(big) == 503
    assert b"Retry-After: 1" in big or b"retry-after: 1" in big
    assert small.status_code == 404  # past the door: the person is unknown, not "overloaded"
