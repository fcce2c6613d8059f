"""A small HTTP/1.1 client for measuring a server from outside: a one-off GET, the latencies
of GETs sent one after another, a load of keep-alive connections sending GET after GET, and
requests with a body and a bearer key on keep-alive connections (`Api`, `exchange`).

It speaks just enough HTTP (GET, a status line, Content-Length) to cost the client as little
as possible: with httpx on two cores the client, not the server, was the limit (about 400
requests/s where this client gets several times that).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class Load:
    requests: int
    failures: int
    seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def get_status(host: str, port: int, path: str, *, timeout_s: float = 1.0) -> int:
    """The status of one GET on a new connection; raises OSError if nothing listens."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(_request(host, port, path, {}, close=True))
        with sock.makefile("rb") as stream:
            return _read_answer(stream)


def time_requests(
    host: str,
    port: int,
    path: str,
    *,
    count: int,
    warmup: int = 50,
    headers: dict[str, str] | None = None,
) -> list[float]:
    """GET `path` `count` times, one after the other on one keep-alive connection; each
    latency in ms, from sending to the last byte of the body. Every answer must be 200, so
    that a refused key cannot pass for a fast one."""
    request = _request(host, port, path, headers or {})
    latencies = []
    with socket.create_connection((host, port)) as sock, sock.makefile("rb") as stream:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for number in range(warmup + count):
            started = time.perf_counter()
            sock.sendall(request)
            status = _read_answer(stream)
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}, not 200")
            if number >= warmup:
                latencies.append(elapsed)
    return latencies


def run_load(
    host: str,
    port: int,
    path: str,
    *,
    connections: int,
    duration_s: float,
    headers: dict[str, str] | None = None,
) -> Load:
    """GET `path` over `connections` connections for `duration_s`; count the answers."""
    request = _request(host, port, path, headers or {})
    return asyncio.run(_load((host, port), request, connections, duration_s))


async def _load(
    address: tuple[str, int], request: bytes, connections: int, duration_s: float
) -> Load:
    started = time.perf_counter()
    deadline = started + duration_s
    counts = await asyncio.gather(
        *(_connection(address, request, deadline) for _ in range(connections))
    )
    seconds = time.perf_counter() - started
    return Load(sum(ok for ok, _ in counts), sum(bad for _, bad in counts), seconds)


async def _connection(address: tuple[str, int], request: bytes, deadline: float) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection(*address)
    ok = bad = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            await reader.readexactly(_content_length(lines[1:]))
            if int(lines[0].split(b" ", 2)[1]) == 200:
                ok += 1
            else:
                bad += 1
    finally:
        writer.close()
        await writer.wait_closed()
    return ok, bad


def _request(
    host: str, port: int, path: str, headers: dict[str, str], *, close: bool = False
) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Connection: {'close' if close else 'keep-alive'}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_answer(stream: BinaryIO) -> int:
    """Read one answer (status line, headers, body) and return its status."""
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection without answering")
    headers = []
    while (line := stream.readline()) not in (b"\r\n", b""):
        headers.append(line.rstrip(b"\r\n"))
    stream.read(_content_length(headers))
    return int(status_line.split(b" ", 2)[1])


def _content_length(header_lines: list[bytes]) -> int:
    for line in header_lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError("the server answered without Content-Length; this client cannot read it")


@dataclass(frozen=True)
class Api:
    """Where the server answers, and the bearer key to present."""

    port: int
    key: str
    host: str = "127.0.0.1"

    def request(self, method: str, path: str, body: bytes) -> bytes:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection; its status and body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return int(lines[0].split(b" ", 2)[1]), body


def expect(status: int, body: bytes, wanted: int, what: str) -> None:
    if status != wanted:
        raise RuntimeError(f"{what} answered {status}: {body[:300].decode(errors='replace')}")


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()
