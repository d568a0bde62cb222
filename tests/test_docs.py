"""/docs and /redoc work offline: every script, style and picture they load comes from seenby itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from service.main import create_app
from tests.conftest import Backend, serve

PAGES = ("/docs", "/redoc")
# Any absolute URL (scheme://...) or protocol-relative one (//host/...) inside a script or a style.
ABSOLUTE_URL = re.compile(r"""(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//[^\s'"`)<>]+""")
# The URLs an inline script or style names: quoted paths, and CSS url(...).
QUOTED_PATH = re.compile(r"""['"`](/[^'"`\s]*)['"`]""")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""")
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


class References(HTMLParser):
    """Every URL an HTML page makes a browser load or link to, and the text of its inline scripts."""

    URL_ATTRIBUTES = frozenset({"src", "href", "spec-url", "data", "action", "poster", "srcset"})

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_inline = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name in self.URL_ATTRIBUTES or name.endswith("url")):
                self.urls.extend(v.split()[0] for v in value.split(",")) if name == "srcset" \
                    else self.urls.append(value)
            if value and name == "style":
                self.inline.append(value)
        self._in_inline = tag in ("script", "style") and not dict(attrs).get("src")

    def handle_endtag(self, tag: str) -> None:
        self._in_inline = False

    def handle_data(self, data: str) -> None:
        if self._in_inline and data.strip():
            self.inline.append(data)


def references(html: str) -> References:
    parser = References()
    parser.feed(html)
    parser.close()
    return parser


async def page_references(client: httpx.AsyncClient, path: str) -> set[str]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    found = references(response.text)
    for text in found.inline:
        assert not ABSOLUTE_URL.search(text), f"{path}: an inline script or style names another host: {text}"
    urls = set(found.urls)
    for text in found.inline:
        urls.update(QUOTED_PATH.findall(text))
        urls.update(CSS_URL.findall(text))
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{path} loads {url} from another host"
        assert url.startswith("/"), f"{path}: {url} is not a path on this host"
    return urls


def test_the_parser_sees_what_a_cdn_page_loads() -> None:
    """The check above can fail: FastAPI's default page loads from a CDN, and the parser finds it."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    swagger = references(get_swagger_ui_html(openapi_url="/openapi.json", title="t").body.decode())
    assert any(urlsplit(u).netloc for u in swagger.urls)
    redoc = references(get_redoc_html(openapi_url="/openapi.json", title="t").body.decode())
    assert any(urlsplit(u).netloc for u in redoc.urls)
    assert ABSOLUTE_URL.search("const ui = SwaggerUIBundle({url: 'https://example.com/openapi.json'})")


@pytest.mark.parametrize("path", PAGES)
async def test_docs_pages_load_only_from_the_app(client: httpx.AsyncClient, path: str) -> None:
    urls = await page_references(client, path)
    assert "/openapi.json" in urls
    assets = [u for u in urls if u != "/openapi.json"]
    assert any(u.endswith(".js") for u in assets), f"{path} loads no script: {urls}"
    for url in urls:
        response = await client.get(url)  # no token: the docs are public while they are enabled
        assert response.status_code == 200, f"{path} loads {url}: {response.status_code}"
        suffix = "." + url.rsplit(".", 1)[-1]
        content_type = response.headers["content-type"].split(";")[0]
        assert content_type in CONTENT_TYPES[suffix], f"{url} is served as {content_type}"
        assert len(response.content) > 0


async def test_swagger_ui_sends_the_document_to_no_validator(client: httpx.AsyncClient) -> None:
    # Swagger UI's default validatorUrl is validator.swagger.io: the page would send it our document.
    assert '"validatorUrl": null' in (await client.get("/docs")).text


async def test_docs_routes_are_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]


@pytest.fixture(scope="module")
def app_without_docs(backend: Backend) -> FastAPI:
    return create_app(backend.settings.model_copy(update={"docs_enabled": False}))


async def test_docs_disabled_answers_404_everywhere(
    client: httpx.AsyncClient, app_without_docs: FastAPI
) -> None:
    urls = {*PAGES, "/openapi.json"}
    for page in PAGES:
        urls |= await page_references(client, page)
    async for closed in serve(app_without_docs):
        for url in sorted(urls):
            assert (await closed.get(url)).status_code == 404, url
        assert (await closed.get("/healthz")).status_code == 200


@pytest.mark.parametrize("path", PAGES)
async def test_the_browser_may_load_nothing_from_elsewhere(client: httpx.AsyncClient, path: str) -> None:
    # ReDoc's bundle shows a logo from cdn.redoc.ly: the policy keeps the browser from asking for it.
    policy = (await client.get(path)).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    for values in directives.values():
        assert not ABSOLUTE_URL.search(values) and "*" not in values, policy
