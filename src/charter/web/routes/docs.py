"""`GET /docs` (Swagger UI) and `GET /redoc` (ReDoc): the interactive API documentation, which
works with no network.

Their scripts, stylesheet and icon are the ones the pinned `fastapi-offline` package ships,
served by Charter itself from `GET /docs/assets/{name}`, so each page's policy allows scripts
and styles from its own origin only. Both style their elements inline, and Swagger UI's
start-up script is inline too, allowed by its hash only; ReDoc runs its search in a worker
made from a `blob:`. The pages show the public OpenAPI description and send requests with the
key a person types in; they render nothing of a request's, so inline styles are the one thing
they are allowed beyond the policy page's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import metadata, resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from charter.errors import NotFound
from charter.web.headers import inline_sources, page_policy

router = APIRouter(include_in_schema=False)

STATIC = resources.files("fastapi_offline") / "static"
# The only files served, and their types: nothing else of the package (or the disk) is.
ASSETS: Mapping[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# The assets change only with the pinned package, whose version is in every URL that names
# them (`?v=`): a browser may keep each for a year and never ask again.
VERSION = metadata.version("fastapi-offline")
CACHE_CONTROL = "public, max-age=31536000, immutable"
# Swagger UI and ReDoc set `style=` on their elements; CSP ignores 'unsafe-inline' when a
# hash is listed beside it, so style-src lists none.
INLINE_STYLES = "'unsafe-inline'"


@functools.cache
def _asset_bytes(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _asset_url(request: Request, name: str) -> str:
    root = request.scope.get("root_path", "")
    return f"{root}/docs/assets/{name}?v={VERSION}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> Response:
    """One of `ASSETS`, from the pinned fastapi-offline package; any other name is a 404."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no documentation asset is called {name}")
    return Response(
        _asset_bytes(name), media_type=media_type, headers={"Cache-Control": CACHE_CONTROL}
    )


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=_asset_url(request, "swagger-ui-bundle.js"),
        swagger_css_url=_asset_url(request, "swagger-ui.css"),
        swagger_favicon_url=_asset_url(request, "favicon.png"),
    )
    start_up = inline_sources(bytes(page.body).decode()).get("script_src", "")
    page.headers["Content-Security-Policy"] = page_policy(
        script_src=start_up, style_src=INLINE_STYLES, img_src="data:"
    )
    return page


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=_asset_url(request, "redoc.standalone.js"),
        redoc_favicon_url=_asset_url(request, "favicon.png"),
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = page_policy(
        style_src=INLINE_STYLES, img_src="data:", worker_src="blob:"
    )
    return page
