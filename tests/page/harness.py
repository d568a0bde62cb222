"""The customer page under a real browser: Debian's chromium driven by Playwright (never a browser
download), against a running `seenby serve` with data recorded through the API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from playwright.async_api import Browser, Page, async_playwright

from tests.ci import unavailable
from tests.conftest import Tokens

REPO = Path(__file__).resolve().parents[2]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium() -> str:
    found = os.environ.get("SEENBY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        unavailable("no chromium to drive: install Debian's (apt-get install chromium) or point "
                    "SEENBY_CHROMIUM at one; the page tests never download a browser")
    return found


def axe_script() -> Path:
    path = Path(os.environ.get("SEENBY_AXE_JS", REPO / "build/node/node_modules/axe-core/axe.min.js"))
    if not path.is_file():
        unavailable(f"axe-core not found at {path}: run `npm install --prefix build/node axe-core@4` "
                    "(as .ci/run does) or set SEENBY_AXE_JS")
    return path


def artifacts() -> Path:
    """Where screenshots and measurements go: SEENBY_ARTIFACTS, else build/page-artifacts."""
    folder = Path(os.environ.get("SEENBY_ARTIFACTS", REPO / "build/page-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Site:
    base: str
    tokens: Tokens
    verifier_key: str

    def url(self, customer_id: str, *, key: str | None = None, **fragment: str) -> str:
        values = {"token": self.tokens.mint("customer", customer_id, ttl=3600),
                  "key": self.verifier_key if key is None else key, **fragment}
        return f"{self.base}/app/#{urlencode(values)}"

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=30.0)


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Browser, url: str, viewport: dict[str, int] = DESKTOP,
                    **context: Any) -> Page:
    page = await (await browser.new_context(viewport=viewport, **context)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    return page


async def wait_until(page: Page, expression: str, within: float = 30.0) -> Any:
    """Until `expression` is truthy in the page. (Playwright's wait_for_function compiles its
    predicate in the page, which the page's CSP rightly refuses: this asks from outside instead.)"""
    deadline = asyncio.get_running_loop().time() + within
    while not (value := await page.evaluate(expression)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never true in the page: {expression}")
        await asyncio.sleep(0.05)
    return value


# The badge's states once its check has run (badge.js): all holds; the entries hold but completeness
# could not be checked; nothing checked (seenby out of reach); the token refused; a mismatch.
FINAL = ("verified", "partial", "unavailable", "signin", "failed")


async def verdict(page: Page, within: float = 30.0) -> str:
    """The badge's final state (one of FINAL), once the check has run."""
    await wait_until(page, f"{list(FINAL)}.includes(document.getElementById('badge').dataset.state)", within)
    return await page.get_attribute("#badge", "data-state") or ""
