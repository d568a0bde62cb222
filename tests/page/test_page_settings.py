"""Serving the page: who may frame it, turning it off, and a file that does not exist."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from service.main import create_app
from tests.conftest import base_settings


def client(tmp_path: Path, **overrides: object) -> httpx.AsyncClient:
    # Static files need no database: no lifespan, so nothing connects.
    app = create_app(base_settings(tmp_path, **overrides))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://seenby.test")


def directives(response: httpx.Response) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))


async def test_by_default_nobody_may_frame_the_page(tmp_path: Path) -> None:
    async with client(tmp_path) as http:
        response = await http.get("/app/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert directives(response)["frame-ancestors"] == "'none'"
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_host_app_may_be_allowed_to_frame_it(tmp_path: Path) -> None:
    async with client(tmp_path, page_frame_ancestors="https://app.example.com, 'self'") as http:
        response = await http.get("/app/")
    assert directives(response)["frame-ancestors"] == "https://app.example.com 'self'"
    assert "x-frame-options" not in response.headers  # it would override the list in old browsers


@pytest.mark.parametrize("source", ["*", "https://a.example.com/path", "javascript:alert(1)",
                                    "'unsafe-inline'", "https://a.example.com; script-src *"])
def test_a_frame_ancestor_that_is_not_an_origin_is_refused_at_start(tmp_path: Path, source: str) -> None:
    with pytest.raises(ValidationError, match="SEENBY_PAGE_FRAME_ANCESTORS"):
        base_settings(tmp_path, page_frame_ancestors=source)


async def test_the_page_can_be_turned_off(tmp_path: Path) -> None:
    async with client(tmp_path, page_enabled=False) as http:
        assert (await http.get("/app/")).status_code == 404


async def test_unknown_files_and_traversal_are_404_problems(tmp_path: Path) -> None:
    async with client(tmp_path) as http:
        for path in ("/app/nope.js", "/app/../service/settings.py", "/app/%2e%2e/main.py"):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/problem+json", path
        modules = await http.get("/app/app.js")
    assert modules.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert directives(modules)["script-src"] == "'self'"
