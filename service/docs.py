"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), with their scripts served
by seenby itself: they work on a machine without internet, and a reader's browser asks no other host.

The assets are those that the fastapi-offline package ships (a pinned PyPI dependency, so a version
bump is a one-line change and no megabytes of minified JavaScript live in this repository). Only its
files are used: its `FastAPIOffline()` replaces the `FastAPI()` constructor and mounts the assets even
with the pages turned off, where seenby registers pages and assets only when docs are enabled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

SWAGGER_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))

# Swagger UI's default sends the document to validator.swagger.io for a badge; seenby's is checked
# by its own test (tests/test_openapi.py).
SWAGGER_PARAMETERS = {"validatorUrl": None}
# What the bundles would still fetch from elsewhere (ReDoc's "by Redocly" logo) the browser refuses.
# Swagger UI's page starts it with an inline script; ReDoc styles itself inline and parses the
# document in a blob: worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'"
)


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Add /docs, /redoc and their assets under /docs/assets/; none of them in the OpenAPI document,
    none behind a token (the document itself is public while docs are enabled)."""

    def page(render: Callable[[str], HTMLResponse]) -> Callable[[Request], Awaitable[HTMLResponse]]:
        """A page whose URLs start at the app's root path (behind a proxy's prefix too)."""

        async def endpoint(request: Request) -> HTMLResponse:
            page = render(str(request.scope.get("root_path", "")).rstrip("/"))
            page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            page.headers["Referrer-Policy"] = "no-referrer"
            return page

        return endpoint

    swagger_ui = page(lambda base: get_swagger_ui_html(
        openapi_url=base + openapi_url, title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{base}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{base}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{base}{ASSETS_URL}/favicon.png", swagger_ui_parameters=SWAGGER_PARAMETERS,
    ))
    redoc = page(lambda base: get_redoc_html(
        openapi_url=base + openapi_url, title=f"{app.title} - ReDoc",
        redoc_js_url=f"{base}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{base}{ASSETS_URL}/favicon.png", with_google_fonts=False,
    ))
    app.add_api_route(SWAGGER_URL, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(REDOC_URL, redoc, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

