"""Headers that tell a browser what each response may do: every response is its declared
type only (`nosniff`) and is never framed by another site (clickjacking); each carries a
Content-Security-Policy that allows nothing it does not need.

An API answer (JSON) needs nothing: `default-src 'none'`. A page may load what Charter
serves itself, and runs no inline code unless the route that serves it names that code by
its hash (`page_policy`): the policy page names its one stylesheet, /docs its start-up script.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NEVER_FRAMED = "frame-ancestors 'none'"
API_POLICY = f"default-src 'none'; {NEVER_FRAMED}"
# Every response, whatever it is. X-Frame-Options is for browsers that predate
# frame-ancestors; both say the same.
ALWAYS: Mapping[str, str] = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
# The inline <style> and <script> elements of a page (not those that load a file by `src`).
_INLINE = re.compile(r"<(style|script)(?![^>]*\bsrc=)[^>]*>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


def page_policy(**sources: str) -> str:
    """The policy of an HTML page: its own origin only, never framed; `sources` add to it by
    directive, `style_src="'sha256-…'"` for `style-src`."""
    directives = {"default-src": "'self'", "base-uri": "'self'", "form-action": "'self'"}
    for name, value in sources.items():
        directive = name.replace("_", "-")
        # A directive given replaces default-src for its kind: keep 'self' in it.
        directives[directive] = f"'self' {value}"
    return "; ".join([*(f"{k} {v}" for k, v in directives.items()), NEVER_FRAMED])


@functools.lru_cache(maxsize=16)
def inline_sources(html: str) -> Mapping[str, str]:
    """The hash sources of a page's inline styles and scripts, by directive (`style_src`,
    `script_src`), for `page_policy`. For pages Charter renders itself; a page is rendered once
    per policy and the same page object comes back, so the cache makes this free after once."""
    found: dict[str, list[str]] = {}
    for tag, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        found.setdefault(f"{tag.lower()}_src", []).append(f"'sha256-{digest}'")
    return {directive: " ".join(hashes) for directive, hashes in found.items()}


def add_security_headers(headers: MutableHeaders) -> None:
    """Add `ALWAYS`, and the policy for the response's type unless its route set one. The
    middleware calls it on every response; the plain 500, which leaves outside the
    middleware, calls it itself."""
    for name, value in ALWAYS.items():
        headers[name] = value
    if "content-security-policy" not in headers:
        html = headers.get("content-type", "").startswith("text/html")
        headers["Content-Security-Policy"] = page_policy() if html else API_POLICY


class SecurityHeaders:
    """Adds `ALWAYS` to every HTTP response, and a Content-Security-Policy to those whose
    route did not set one: `API_POLICY`, or `page_policy()` for HTML."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)
