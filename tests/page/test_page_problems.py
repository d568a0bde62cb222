"""The customer page when things go wrong that are not a lie: no token, an expired one, seenby out of
reach or failing, a completeness proof that does not come; and what it says about entries that
are no accesses, and about entries recorded long after they happened. What the page says then
does not depend on the database, so this runs on SQLite only."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page

from service.ledger.kinds import EntryKind
from service.migrate import upgrade
from tests.conftest import Backend, base_settings
from tests.factories import access_event
from tests.page.harness import REPO, Site, artifacts, browser, open_page, verdict, wait_until
from tests.page.proxy import LyingProxy, lying_proxy
from tests.page.test_page import record, rows

STATIC = REPO / "service/page/static"
# Every kind of entry a customer's chain holds (the customer index leaf belongs to no chain).
ENTRY_KINDS = {kind.value for kind in EntryKind}  # NewEntry.kind is one of them (mypy holds it)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    data_dir = tmp_path_factory.mktemp("page-problems")
    settings = base_settings(data_dir, database_url=f"sqlite+aiosqlite:///{data_dir}/seenby.db")
    upgrade(settings)
    return Backend("sqlite", settings)


async def shoot(page: Page, name: str) -> Path:
    path = artifacts() / f"problem-{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path


async def visible(page: Page, selector: str) -> bool:
    return await page.is_visible(selector)


async def message(page: Page) -> str:
    await page.wait_for_selector("#message:not([hidden])")
    return await page.inner_text("#message")


@contextlib.asynccontextmanager
async def through_proxy(site: Site, mode: str, customer: str) -> AsyncIterator[tuple[Page, LyingProxy]]:
    """The customer's page, opened through a proxy in `mode` (tests.page.proxy) in front of seenby."""
    with lying_proxy(site.base, mode, target_seq=0) as (base, proxy):
        async with browser() as chromium:
            yield await open_page(chromium, Site(base, site.tokens, site.verifier_key).url(customer)), proxy


# --- Sign-in problems are not verification failures ---------------------------------------------


async def test_without_a_token_only_the_sign_in_message_shows(site: Site) -> None:
    async with browser() as chromium:
        page = await open_page(chromium, f"{site.base}/app/")
        assert "did not receive your sign-in" in await message(page)
        await page.wait_for_timeout(500)
        # `hidden` wins over the badge's own display: no "Checking…" spinning forever, no empty filters.
        assert not await visible(page, "#badge")
        assert not await visible(page, "#filters") and not await visible(page, ".tabs")
        await shoot(page, "no-token")
        assert page.errors == []  # type: ignore[attr-defined]


async def test_an_expired_token_is_a_sign_in_problem_not_a_failed_check(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, [access_event(customer)])
    expired = site.tokens.mint("customer", customer, ttl=-3600)
    async with browser() as chromium:
        page = await open_page(chromium, f"{site.base}/app/#token={expired}&key={site.verifier_key}")
        assert "Your session has ended" in await message(page)
        await page.wait_for_timeout(1000)
        assert await page.get_attribute("#badge", "data-state") != "failed"
        assert not await visible(page, "#badge")
        assert "Verification failed" not in await page.inner_text("body")
        assert not await visible(page, "#filters")
        await shoot(page, "expired-token")


async def test_a_check_whose_token_is_refused_asks_to_sign_in(site: Site) -> None:
    """The history loaded, then seenby answered the check 401: that is no mismatch."""
    customer = f"page-{uuid.uuid4()}"
    await record(site, [access_event(customer), access_event(customer)])
    async with through_proxy(site, "refuse_checks", customer) as (page, proxy):
        assert await verdict(page) == "signin", await page.inner_text("#badge")
        badge = await page.inner_text("#badge")
        assert "Not checked" in badge and "Your session has ended" in badge
        assert "failed" not in badge.lower() and "401" not in badge
        assert await page.eval_on_selector_all("#badge-failures li", "li => li.length") == 0
        assert "Your session has ended" in await message(page)
        assert {row["check"] for row in await rows(page)} == {"unchecked"}
        await shoot(page, "check-refused")
        assert proxy.tampered > 0


async def test_seenby_failing_under_the_check_is_could_not_check(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, [access_event(customer)])
    async with through_proxy(site, "checks_failing", customer) as (page, proxy):
        assert await verdict(page) == "unavailable", await page.inner_text("#badge")
        assert await page.inner_text("#badge-title") == "Could not check right now"
        assert "Verification failed" not in await page.inner_text("#badge")
        assert await visible(page, "#badge-retry")
        assert {row["check"] for row in await rows(page)} == {"unchecked"}
        await shoot(page, "check-unavailable")
        assert proxy.tampered > 0


# --- Completeness that could not be checked is not "Verified" -----------------------------------


async def test_a_withheld_completeness_proof_is_not_the_verified_state(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, [access_event(customer, clip_id=f"clip-{n}") for n in range(3)])
    async with through_proxy(site, "no_completeness", customer) as (page, proxy):
        assert await verdict(page) == "partial", await page.inner_text("#badge")
        title = await page.inner_text("#badge-title")
        assert title == "Entries verified; could not yet check that nothing was left out"
        detail = await page.inner_text("#badge-detail")
        assert "all 3 entries" in detail and "Nothing about you was left out" not in detail
        # Not the green of the verified state.
        color = await page.evaluate("getComputedStyle(document.getElementById('badge')).borderColor")
        assert color != "rgb(30, 122, 58)", color
        # The entries themselves did verify.
        await wait_until(page, "[...document.querySelectorAll('#history > li')]"
                               ".every(li => li.dataset.check === 'verified')")
        await shoot(page, "completeness-withheld")
        assert proxy.tampered > 0


# --- Server down ---------------------------------------------------------------------------------


async def test_seenby_out_of_reach_is_said_plainly_and_nothing_shown_is_lost(site: Site) -> None:
    """seenby goes down: the live stream's connection ends, and nothing new connects."""
    customer = f"page-{uuid.uuid4()}"
    await record(site, [access_event(customer, clip_id=f"clip-{n}") for n in range(4)])
    async with through_proxy(site, "honest", customer) as (page, proxy):
        await _out_of_reach(page, proxy)


async def _out_of_reach(page: Page, proxy: LyingProxy) -> None:
    assert await verdict(page) == "verified"
    await wait_until(page, "document.getElementById('live').dataset.state === 'live'")
    shown = [row["hash"] for row in await rows(page)]
    assert len(shown) == 4

    await page.context.set_offline(True)
    proxy.cut_streams()
    # The live stream: it says it is reconnecting, in words a customer can see.
    await wait_until(page, "document.getElementById('live').dataset.state === 'reconnecting'", 15)
    assert "reconnecting" in (await page.inner_text("#live")).lower()
    assert await visible(page, "#live")

    # A filter change that cannot be loaded keeps what was shown.
    await page.select_option("#filters select[name=purpose]", "security")
    text = await message(page)
    assert text == "Can't reach seenby right now; try again in a moment.", text
    await wait_until(page, "document.getElementById('history').getAttribute('aria-busy') === 'false'")
    assert [row["hash"] for row in await rows(page)] == shown
    assert await visible(page, "#history-stale"), "it says the rows are from before the change"

    # Another tab, a consent switch: the same plain words, never "Failed to fetch".
    await page.evaluate("document.getElementById('message').hidden = true")
    await page.click("#tab-privacy")
    assert await message(page) == "Can't reach seenby right now; try again in a moment."
    await page.evaluate("document.getElementById('message').hidden = true")
    await page.click("#consent-model_training")
    assert await message(page) == "Can't reach seenby right now; try again in a moment."
    await wait_until(page, "!document.getElementById('consent-model_training').disabled")
    assert not await page.is_checked("#consent-model_training"), "the switch shows what holds"
    await page.click("#tab-history")
    await shoot(page, "offline")
    assert "Failed to fetch" not in await page.inner_text("body")

    # Back: the stream says so, and the tab that could not load loads now.
    await page.context.set_offline(False)
    proxy.restore()
    await wait_until(page, "document.getElementById('live').dataset.state === 'live'", 15)
    assert "Connected again" in await page.inner_text("#live")
    # The filter change that could not be loaded is loaded now: no security accesses.
    await wait_until(page, "document.getElementById('history-stale').hidden")
    await wait_until(page, "document.querySelectorAll('#history > li').length === 0")
    assert await page.inner_text("#history-end") == "Nothing matches these filters."
    await page.click("#tab-privacy")
    await page.wait_for_selector("#grants li")
    assert page.errors == []  # type: ignore[attr-defined]


# --- Entry kinds in words ------------------------------------------------------------------------


def test_every_entry_kind_has_words_in_every_language() -> None:
    catalogues = sorted((STATIC / "i18n").glob("*.json"))
    assert len(catalogues) >= 2
    english = json.loads((STATIC / "i18n/en.json").read_text())
    for catalogue in catalogues:
        messages = json.loads(catalogue.read_text())
        assert set(messages) == set(english), (catalogue.name, set(messages) ^ set(english))
        for kind in ENTRY_KINDS | {"other"}:
            text = messages.get(f"kind.{kind}", "")
            assert text and "_" not in text and text != kind, (catalogue.name, kind, text)


async def test_a_new_entry_of_another_kind_is_announced_in_words(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, [access_event(customer)])
    async with browser() as chromium, site.http() as http:
        page = await open_page(chromium, site.url(customer))
        assert await verdict(page) == "verified"
        await wait_until(page, "document.getElementById('live').dataset.state === 'live'")
        response = await http.post(f"/v1/customers/{customer}/troubleshooting-grants",
                                   headers=site.tokens.customer(customer), json={"clip_id": "clip-9"})
        assert response.status_code == 201, response.text
        await wait_until(page, "document.getElementById('live').textContent.startsWith('New just now')", 10)
        live = await page.inner_text("#live")
        assert live == "New just now: your permission for support to look at one clip.", live


# --- When it happened, when it was recorded ------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_a_late_record_says_when_it_was_recorded(site: Site) -> None:
    now = datetime.now(UTC)
    customer = f"page-{uuid.uuid4()}"
    # Recorded in this order: on time, nine days late, on time. The list keeps that order.
    for clip, ago in (("clip-on-time", timedelta(minutes=2)), ("clip-late", timedelta(days=9)),
                      ("clip-newest", timedelta(0))):
        await record(site, [access_event(customer, clip_id=clip, occurred_at=_iso(now - ago))])
    async with browser() as chromium:
        page = await open_page(chromium, site.url(customer))
        assert await verdict(page) == "verified"
        shown = await rows(page)
        assert [re.search(r"clip-[a-z-]+", row["text"])[0] for row in shown] == [  # type: ignore[index]
            "clip-newest", "clip-late", "clip-on-time"]
        whens = await page.eval_on_selector_all("#history .entry__when", "w => w.map(x => x.textContent)")
        assert "recorded" not in whens[0] and "recorded" not in whens[2], whens
        assert whens[1].startswith("happened ") and " · recorded " in whens[1], whens
        times = await page.eval_on_selector_all("#history > li:nth-child(2) time",
                                                "t => t.map(x => x.getAttribute('datetime'))")
        assert len(times) == 2
        await shoot(page, "late-record")


# --- The token in memory only --------------------------------------------------------------------


async def test_the_token_is_in_memory_only_and_a_reload_asks_to_sign_in(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, [access_event(customer)])
    url = site.url(customer, lang="en", accent="#7a1fa2")
    token = url.split("token=")[1].split("&")[0]
    async with browser() as chromium:
        page = await open_page(chromium, url)
        assert await verdict(page) == "verified"
        storage = await page.evaluate("JSON.stringify({...sessionStorage, ...localStorage})")
        assert token not in storage and "token" not in storage, storage
        kept = json.loads(await page.evaluate("sessionStorage.getItem('seenby.session')"))
        assert kept["key"] == site.verifier_key and kept["accent"] == "#7a1fa2"

        await page.reload()
        assert "Your session has ended" in await message(page)
        assert not await visible(page, "#badge") and not await visible(page, "#filters")
        # The settings that are no secret are still applied.
        style = "getComputedStyle(document.documentElement).getPropertyValue"
        accent = await page.evaluate(f"{style}('--seenby-accent')")
        assert accent == "#7a1fa2"
        await shoot(page, "reloaded")

