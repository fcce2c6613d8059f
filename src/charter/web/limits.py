"""ASGI middleware that refuses request bodies larger than the configured limit with 413."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charter.web.errors import error_response


class BodySizeLimit:
    """Refuse a body over `max_bytes`, whether it declares its length or streams it.

    The body is read in full (up to the limit) before the app sees the request. Reading it as
    the app asks for it would be too late: FastAPI turns any error raised while it reads a body
    into a 400, and a route that never reads its body would run with an oversize one. Charter
    takes no uploads, so holding at most `max_bytes` per request is the price of a clear 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():
                    await error_response(400, "bad_request", "Content-Length is not a number")(
                        scope, receive, send
                    )
                    return
                if int(value) > self.max_bytes:
                    await error_response(413, "too_large", self._too_large())(scope, receive, send)
                    return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending its body; let the app see that.
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await error_response(413, "too_large", self._too_large())(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"


def _replay(pending: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the messages already read, then reads on (disconnects)."""

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
