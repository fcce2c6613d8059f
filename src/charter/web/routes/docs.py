"""`GET /docs`: the interactive API documentation (Swagger UI), with a policy that lets it work.

Swagger UI's script and stylesheet come from a CDN, and it styles its elements inline; its
start-up script is inline too, allowed by its hash only. The page shows the public OpenAPI
description and sends requests with the key a person types in; it renders nothing of a
request's, so inline styles are the one thing it is allowed beyond the policy pages'.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from charter.web.headers import inline_sources, page_policy

router = APIRouter(include_in_schema=False)

CDN = "https://cdn.jsdelivr.net"
FAVICON_HOST = "https://fastapi.tiangolo.com"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
    )
    html = bytes(page.body).decode()
    inline = inline_sources(html)
    page.headers["Content-Security-Policy"] = page_policy(
        script_src=f"{CDN} {inline.get('script_src', '')}".strip(),
        style_src=f"{CDN} 'unsafe-inline'",
        img_src=f"data: {FAVICON_HOST}",
    )
    return page
