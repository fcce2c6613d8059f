"""The interactive API docs work with no network: /docs (Swagger UI) and /redoc (ReDoc) load
everything from Charter itself, and a person can authorise with a key and call a route.

The browser tests drive Debian's chromium (`make test` installs it; Playwright never downloads
a browser) against a real `charter serve`, with every request to another host aborted."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    sync_playwright,
)

from tests.serving import Server, charter
from tests.web.test_headers import allowed, csp

CHROMIUM = Path("/usr/bin/chromium")
UNDER_CI = os.environ.get("CI") == "true"
# Loaded by a page: <script src>, <link href>, and any absolute URL anywhere in it.
REFERENCED = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"([^\"]+)\"")
ABSOLUTE = re.compile(r"https?://[^\s\"'<>)]+")
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not UNDER_CI,
    reason=f"{CHROMIUM} is not installed (`make test` installs Debian's chromium); "
    "under CI (CI=true) it is required and its absence fails",
)


# --- Plain HTTP ----------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_charter_itself(client: TestClient, page: str) -> None:
    response = client.get(page)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert ABSOLUTE.findall(response.text) == []
    referenced = REFERENCED.findall(response.text)
    assert len(referenced) >= 2  # a script and the icon at least
    for url in referenced:
        path = urlsplit(url).path
        assert path.startswith("/docs/assets/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(TYPES[Path(path).suffix]), url
        assert "max-age=31536000" in asset.headers["cache-control"]
        assert asset.content
    assert "/openapi.json" in response.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_allow_no_other_site(client: TestClient, page: str) -> None:
    policy = csp(client.get(page))

    sources = [source for sources in policy.values() for source in sources]
    assert not [s for s in sources if "." in s or s.startswith(("http:", "https:", "*"))]
    assert allowed(policy, "script-src")[0] == "'self'"
    assert not any("unsafe" in s for s in allowed(policy, "script-src"))
    assert allowed(policy, "style-src") == ["'self'", "'unsafe-inline'"]
    assert allowed(policy, "img-src") == ["'self'", "data:"]
    assert allowed(policy, "connect-src") == ["'self'"]


@pytest.mark.parametrize(
    "name",
    [
        "index.html",
        "swagger-ui-bundle.js.map",
        "..%2F__init__.py",
        "..%2F..%2F..%2Fpyvenv.cfg",
        "%2Fetc%2Fpasswd",
        "SWAGGER-UI.CSS",
    ],
)
def test_the_asset_route_refuses_every_other_name(client: TestClient, name: str) -> None:
    response = client.get(f"/docs/assets/{name}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_assets_are_not_in_the_openapi_description(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


# --- In a browser, offline -----------------------------------------------------------------


@dataclass
class Offline:
    """A page on which every request to a host other than the server's is aborted, and
    remembered; with what the page said on its console."""

    page: Page
    origin: str
    elsewhere: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith((f"{self.origin}/", "data:", "blob:")):
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()

    def note(self, message: ConsoleMessage) -> None:
        self.console.append(message.text)

    def refusals(self) -> list[str]:
        """What the page's Content-Security-Policy blocked."""
        return [text for text in self.console if "Content Security Policy" in text]


def urls_in(text: str) -> list[str]:
    return re.findall(r"'(https?://[^']+)'", text)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():  # reached only under CI (see needs_chromium)
        pytest.fail(f"{CHROMIUM} is required under CI: `make browser` installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture
def offline(browser: Browser) -> Iterator[Callable[[str], Offline]]:
    """`offline(origin)`: a new page that reaches `origin` only."""
    contexts: list[BrowserContext] = []

    def open_page(origin: str) -> Offline:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)  # a bound on a stuck page, not a timing assertion
        watched = Offline(page, origin)
        page.route("**/*", watched.route)
        page.on("console", watched.note)
        return watched

    yield open_page
    for context in contexts:
        context.close()


def staff_key(env: dict[str, str], name: str, role: str) -> str:
    charter(env, "staff", "add", name, "--role", role)
    return str(json.loads(charter(env, "keys", "create", "--staff", name, "--json"))["key"])


@needs_chromium
@pytest.mark.slow
def test_the_offline_page_notices_a_request_to_another_host(
    offline: Callable[[str], Offline],
) -> None:
    # The watch the tests below rely on: a page that asks another host is caught and stopped.
    watched = offline("http://127.0.0.1:9")
    watched.page.set_content('<img src="https://cdn.example.com/logo.png">')

    assert watched.elsewhere == ["https://cdn.example.com/logo.png"]


@needs_chromium
@pytest.mark.slow
def test_swagger_ui_works_offline_and_calls_a_route_with_the_key_typed_in(
    environment: dict[str, str],
    server: Callable[[], Server],
    offline: Callable[[str], Offline],
) -> None:
    charter(environment, "init")
    key = staff_key(environment, "dana", "privacy_officer")
    running = server()
    watched = offline(running.base)
    page = watched.page

    page.goto(f"{running.base}/docs")
    operation = page.locator('.opblock-get:has(.opblock-summary-path[data-path="/v1/staff"])')
    operation.wait_for()
    page.locator(".auth-wrapper button.authorize").click()
    page.locator(".modal-ux input").fill(key)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    with page.expect_response(f"{running.base}/v1/staff") as answered:
        operation.locator("button.execute").click()
    shown = operation.locator(".live-responses-table .response")
    shown.wait_for()

    assert answered.value.status == 200
    assert answered.value.request.header_value("authorization") == f"Bearer {key}"
    assert shown.locator(".response-col_status").inner_text().strip() == "200"
    assert '"dana"' in shown.locator(".response-col_description").inner_text()
    assert watched.elsewhere == []
    assert watched.refusals() == []


@needs_chromium
@pytest.mark.slow
def test_redoc_renders_the_operations_offline(
    environment: dict[str, str],
    server: Callable[[], Server],
    offline: Callable[[str], Offline],
) -> None:
    charter(environment, "init")
    running = server()
    watched = offline(running.base)
    page = watched.page

    page.goto(f"{running.base}/redoc")
    # The operations, by their summaries in the menu and the headings beside them.
    page.locator("h2", has_text="List Staff").wait_for()
    # Its search runs in a worker made from a blob: URL.
    page.get_by_role("textbox", name="Search").fill("staff")
    found = page.locator('[data-role="search:results"]')
    found.get_by_text("List Staff").wait_for()

    assert page.get_by_text("/v1/staff", exact=True).count() >= 1  # beside each operation
    assert found.get_by_text("Add Staff").count() == 1
    assert watched.elsewhere == []
    # The one thing it asks of another site is its own logo, under "API docs by Redocly": the
    # policy blocks it, so it is never fetched, and ReDoc drops the image.
    assert [urls_in(refusal) for refusal in watched.refusals()] == [[REDOCLY_LOGO]]
    assert page.locator(f'img[src="{REDOCLY_LOGO}"]').count() == 0
