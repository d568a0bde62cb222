"""The customer page at /app/, in Debian's chromium, against a running seenby on each backend: what it
shows, what it lets a customer do, what it verifies, and what it says when the server lies."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Page, Request

from tests.factories import access_event, algorithm_actor, human_actor
from tests.page.harness import (
    DESKTOP,
    PHONE,
    Site,
    artifacts,
    axe_script,
    browser,
    open_page,
    verdict,
    wait_until,
)
from tests.page.proxy import lying_proxy
from tests.servers import seenby_command, settings_env, wait_until_integrated

XSS = '<img src=x onerror="window.__owned=1">'
VIEWS = ("history", "pictures", "privacy", "deletions")


async def record(site: Site, events: list[dict[str, Any]]) -> None:
    async with site.http() as http:
        for start in range(0, len(events), 1000):
            response = await http.post("/v1/accesses:batch", json={"events": events[start:start + 1000]},
                                       headers=site.tokens.service())
            assert response.status_code == 201, response.text
        customers = dict.fromkeys(event["customer_id"] for event in events)
        await wait_until_integrated(http, site.base, customers, site.tokens.regulator(), within=60.0)


async def refuse_one(site: Site, customer_id: str) -> str:
    """An access ticket refused for want of consent: an access_refused entry in the chain."""
    async with site.http() as http:
        response = await http.post("/v1/access-tickets", headers=site.tokens.service(), json={
            "audience": "clip-store", "event": access_event(customer_id, clip_id="clip-refused")})
        assert response.status_code == 403, response.text
        return str(response.json()["entry_hash"])


def mixed_history(customer_id: str) -> list[dict[str, Any]]:
    return [
        access_event(customer_id, clip_id="clip-1", occurred_at="2026-10-02T08:00:00Z"),
        access_event(customer_id, clip_id="clip-2", purpose="model_training", action="train",
                     occurred_at="2026-11-03T08:00:00Z"),
        access_event(customer_id, clip_id="clip-3", justification=XSS,
                     actor={**human_actor(), "organization": XSS, "country": "PH"}),
        access_event(customer_id, clip_id="clip-1", actor=algorithm_actor(), purpose="security",
                     action="infer", media=["video"]),
        access_event(customer_id, clip_id="clip-4", purpose="customer_support"),
    ]


async def rows(page: Page) -> list[dict[str, Any]]:
    return await page.eval_on_selector_all("#history > li", """items => items.map(li => ({
        hash: li.dataset.hash, check: li.dataset.check, refused: li.classList.contains('entry--refused'),
        text: li.textContent}))""")


async def shoot(page: Page, name: str) -> None:
    await page.screenshot(path=artifacts() / f"{name}.png", full_page=True)


async def test_the_history_is_shown_verified_and_recorded_text_stays_text(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer))
    refused = await refuse_one(site, customer)
    async with site.http() as http:
        await wait_until_integrated(http, site.base, [customer], site.tokens.regulator())
    async with browser() as chromium:
        page = await open_page(chromium, site.url(customer))
        assert await verdict(page) == "verified", await page.inner_text("#badge")
        assert "6" in await page.inner_text("#badge-detail")  # 6 entries: 5 accesses and the refusal
        await wait_until(page, "[...document.querySelectorAll('#history > li')]"
                               ".every(li => li.dataset.check === 'verified')")
        shown = await rows(page)
        assert len(shown) == 6 and all(row["check"] == "verified" for row in shown)
        assert [row["hash"] for row in shown if row["refused"]] == [refused]
        assert shown[0]["hash"] == refused, "newest first"
        # Stored XSS through the ledger: shown as characters, run never.
        assert any(XSS in row["text"] for row in shown)
        assert await page.evaluate("window.__owned") is None
        assert await page.eval_on_selector_all("#history img", "found => found.length") == 0
        # The token left the address bar at once and lives in memory only: in no storage.
        assert urlsplit(page.url).fragment == "" and "token" not in page.url
        stored = json.loads(await page.evaluate("sessionStorage.getItem('seenby.session')"))
        assert "token" not in stored and stored["key"] == site.verifier_key
        assert await page.evaluate("localStorage.length") == 0
        assert page.errors == []  # type: ignore[attr-defined]


# The section tabs cut off by the window's edges (a tab row that scrolls sideways hides its last ones).
OUT_OF_SIGHT = """() => [...document.querySelectorAll('.tabs__tab')].filter(tab => {
    const box = tab.getBoundingClientRect();
    return box.left < 0 || box.right > innerWidth;
}).map(tab => tab.id)"""
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= innerWidth"


async def test_screenshots_of_every_view_at_desktop_and_phone_width(site: Site, backend) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer) * 1 + [
        access_event(customer, clip_id=f"clip-{n % 5}", occurred_at=f"2026-{1 + n % 11:02d}-10T08:00:00Z")
        for n in range(30)])
    await refuse_one(site, customer)
    async with browser() as chromium:
        for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = await open_page(chromium, site.url(customer), viewport)
            assert await verdict(page) == "verified"
            for view in VIEWS:
                # Before the click, which would scroll a tab into view: every section is in sight.
                assert await page.evaluate(OUT_OF_SIGHT) == [], (width, view)
                await page.click(f"#tab-{view}")
                await page.wait_for_timeout(300)
                await shoot(page, f"{backend.name}-{width}-{view}")
                assert await page.evaluate(NO_SIDEWAYS_SCROLL), (width, view)
            assert page.errors == []  # type: ignore[attr-defined]
    assert (artifacts() / f"{backend.name}-phone-history.png").stat().st_size > 10_000


async def test_charts_draw_what_was_verified(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    events = mixed_history(customer) + [access_event(customer, purpose="quality_review") for _ in range(3)]
    await record(site, events)
    async with browser() as chromium:
        page = await open_page(chromium, site.url(customer))
        assert await verdict(page) == "verified"
        await page.click("#tab-pictures")
        labels = await page.eval_on_selector_all("#charts figure svg[role=img]",
                                                 "charts => charts.map(c => c.getAttribute('aria-label'))")
        assert len(labels) == 4
        by_purpose = labels[0]
        expected = sum(1 for event in events if event["purpose"] == "quality_review")
        assert f"quality review: {expected}" in by_purpose
        assert "training a model: 1" in by_purpose and "security: 1" in by_purpose
        assert "Philippines: 1" in labels[2]


async def test_consent_grants_deletions_and_objections_work_from_the_page(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer))
    me = site.tokens.customer(customer)
    async with browser() as chromium, site.http() as http:
        page = await open_page(chromium, site.url(customer))
        assert await verdict(page) == "verified"

        await page.click("#tab-privacy")
        await page.wait_for_selector("#grants li")
        await page.click("#consent-human_review")
        await expect_api(http, f"/v1/customers/{customer}/consent", me,
                         lambda consent: consent["human_review"] is True and not consent["model_training"])
        await page.fill("#grant-form input[name=clip_id]", "clip-9")
        await page.fill("#grant-form input[name=note]", "doorbell freezes")
        await page.click("#grant-form button[type=submit]")
        await expect_api(http, f"/v1/customers/{customer}/troubleshooting-grants", me,
                         lambda grants: [g["clip_id"] for g in grants["items"]] == ["clip-9"])
        await page.wait_for_selector("#grants button")
        await page.click("#grants button")  # withdraw
        await expect_api(http, f"/v1/customers/{customer}/troubleshooting-grants", me,
                         lambda grants: grants["items"][0]["status"] == "withdrawn")

        await page.click("#tab-deletions")
        await page.fill("#deletion-form input[name=clip_id]", "clip-2")
        await page.click("#deletion-form button[type=submit]")
        await expect_api(http, f"/v1/customers/{customer}/deletion-requests", me,
                         lambda requests: [r["clip_ids"] for r in requests["items"]] == [["clip-2"]])
        await page.wait_for_selector("#deletions [data-request]")
        await page.check("#deletion-form input[value=all]")
        await page.click("#deletion-form button[type=submit]")
        await expect_api(http, f"/v1/customers/{customer}/deletion-requests", me,
                         lambda requests: len(requests["items"]) == 2)

        await page.click("#tab-history")
        row = page.locator("#history > li", has=page.locator("button.link")).first
        objected = await row.get_attribute("data-hash")
        await row.locator("button.link").click()
        await page.fill("#objection-form textarea", "I never agreed to this")
        await page.click("#objection-form button[type=submit]")
        await expect_api(http, "/v1/me/objections", me, lambda objections: [
            (o["objected_entry_hash"], o["reason"]) for o in objections["items"]]
            == [(objected, "I never agreed to this")])
        await page.wait_for_selector(f"#history > li[data-hash='{objected}'] .entry__objected")
        assert page.errors == []  # type: ignore[attr-defined]

    # Each of those was a customer writing to the ledger: all of it is in the chain.
    async with site.http() as http:
        kinds = [i["kind"] for i in (await http.get("/v1/me/entries", headers=me,
                                                    params={"limit": 100})).json()["items"]]
    for kind in ("consent_changed", "troubleshooting_granted", "troubleshooting_withdrawn",
                 "deletion_requested", "objection"):
        assert kind in kinds, kinds


async def expect_api(http: httpx.AsyncClient, path: str, headers: dict[str, str], holds: Any,
                     within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        answer = (await http.get(path, headers=headers)).json()
        if holds(answer):
            return
        assert asyncio.get_running_loop().time() < deadline, f"{path} never showed it: {answer}"
        await asyncio.sleep(0.1)


async def test_a_new_entry_appears_live_and_is_checked(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer)[:2])
    async with browser() as chromium, site.http() as http:
        page = await open_page(chromium, site.url(customer))
        assert await verdict(page) == "verified"
        await wait_until(page, "document.getElementById('live').dataset.state === 'live'")
        response = await http.post("/v1/accesses", headers=site.tokens.service(),
                                   json=access_event(customer, clip_id="clip-live"))
        fresh = response.json()["entry_hash"]
        await page.wait_for_selector(f"#history > li[data-hash='{fresh}']", timeout=3000)
        assert (await rows(page))[0]["hash"] == fresh, "on top"
        await page.wait_for_selector(f"#history > li[data-hash='{fresh}'][data-check='verified']",
                                     timeout=15_000)
        assert await page.get_attribute("#badge", "data-state") == "verified"


@pytest.mark.parametrize(("mode", "named"), [
    ("flip", "entry_hash"), ("drop", "chain"), ("key", "checkpoint_signature"), ("shown", "fields")])
async def test_a_lying_server_is_caught_and_the_page_says_what_failed(site: Site, mode: str,
                                                                      named: str) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer))
    with lying_proxy(site.base, mode, target_seq=2) as (base, proxy):
        lying = Site(base, site.tokens, site.verifier_key)
        async with browser() as chromium:
            page = await open_page(chromium, lying.url(customer))
            assert await verdict(page) == "failed"
            checks = await page.eval_on_selector_all("#badge-failures li",
                                                     "li => li.map(x => x.dataset.check)")
            assert named in checks, (checks, await page.inner_text("#badge"))
            assert "Verification failed" in await page.inner_text("#badge-title")
            failures = await page.inner_text("#badge-failures")
            if mode == "flip":  # it says which entry was changed
                assert "entry 2" in failures
            if mode == "drop":  # and where the chain has its gap
                assert "where 2 was expected" in failures
            # The row the lie was about is marked; with a forged signature, nothing is vouched for.
            marked = {row["check"] for row in await rows(page) if row["text"].find("clip-3") >= 0}
            unbacked = [row for row in await rows(page) if row["check"] in ("failed", "missing")]
            assert marked == {"failed" if mode == "shown" else "missing"}
            assert len(unbacked) == (5 if mode == "key" else 1)
            await shoot(page, f"lying-{mode}")
        assert proxy.tampered > 0, "the proxy changed nothing: the test would prove nothing"


async def test_without_a_pinned_key_nothing_is_called_verified(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer)[:1])
    async with browser() as chromium:
        page = await open_page(chromium, site.url(customer, key=""))
        assert await verdict(page) == "failed"
        assert "Not checked" in await page.inner_text("#badge-title")


async def test_the_page_talks_to_nobody_else_and_never_shows_its_token(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer))
    async with site.http() as http:
        for path in ("/app/", "/app/app.js", "/app/verify/worker.js", "/app/i18n/de.json"):
            headers = (await http.get(path)).headers
            policy = dict(part.strip().split(" ", 1)
                          for part in headers["content-security-policy"].split(";"))
            assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
            assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
            assert "unsafe" not in headers["content-security-policy"]
            assert headers["referrer-policy"] == "no-referrer"
            assert headers["x-content-type-options"] == "nosniff"
    requests: list[Request] = []
    async with browser() as chromium:
        context = await chromium.new_context()
        context.on("request", lambda request: requests.append(request))
        page = await context.new_page()
        url = site.url(customer, lang="de", accent="#7a1fa2", background="url(https://evil.example/x)")
        token = url.split("token=")[1].split("&")[0]
        await page.goto(url)
        assert await verdict(page) == "verified"
        assert await page.inner_text("#badge-title") == "Geprüft"
        # The host app's theme: a color is taken, anything that is not one is not.
        style = "getComputedStyle(document.documentElement).getPropertyValue"
        assert await page.evaluate(f"{style}('--seenby-accent')") == "#7a1fa2"
        assert "evil" not in await page.evaluate(f"{style}('--seenby-background')")
        await page.click("#tab-pictures")
        await page.click("#tab-privacy")
        await page.wait_for_selector("#grants li")
        await page.click("#tab-deletions")
        await page.wait_for_selector("#deletions li")
        origin = urlsplit(site.base)
        assert len(requests) > 10
        for request in requests:
            where = urlsplit(request.url)
            assert (where.scheme, where.netloc) == (origin.scheme, origin.netloc), request.url
            assert token not in request.url, "the token went into a URL"
            headers = await request.all_headers()
            assert "referer" not in headers, (request.url, headers.get("referer"))
            if where.path.startswith(("/v1/me", "/v1/customers")):
                assert headers["authorization"] == f"Bearer {token}"
            elif where.path.startswith("/app/"):
                assert "authorization" not in headers, request.url
        await context.close()


async def test_axe_finds_no_serious_or_critical_violation_in_any_view(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer))
    await refuse_one(site, customer)
    async with browser() as chromium:
        # axe is injected by the test: the page's own CSP would (rightly) refuse it.
        page = await open_page(chromium, site.url(customer), bypass_csp=True)
        assert await verdict(page) == "verified"
        await page.add_script_tag(path=str(axe_script()))
        for view in VIEWS:
            await page.click(f"#tab-{view}")
            await page.wait_for_timeout(300)
            found = await page.evaluate("""async () => (await axe.run(document)).violations
                .filter(v => ['serious', 'critical'].includes(v.impact))
                .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))""")
            assert found == [], (view, found)
        # And with the objection dialog open.
        await page.click("#tab-history")
        await page.locator("#history button.link").first.click()
        found = await page.evaluate("""async () => (await axe.run(document)).violations
            .filter(v => ['serious', 'critical'].includes(v.impact)).map(v => v.id)""")
        assert found == [], found


async def test_a_keyboard_reaches_every_section(site: Site) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer)[:1])
    async with browser() as chromium:
        page = await open_page(chromium, site.url(customer))
        assert await verdict(page) == "verified"
        focused = []
        for _ in range(12):
            await page.keyboard.press("Tab")
            focused.append(await page.evaluate("document.activeElement.id || document.activeElement.name"))
        assert {"tab-history", "tab-pictures", "tab-privacy", "tab-deletions"} <= set(focused)
        await page.focus("#tab-deletions")
        await page.keyboard.press("Enter")
        assert await page.is_visible("#deletion-form") and not await page.is_visible("#filters")


async def test_seenby_token_open_prints_a_url_that_opens_a_verified_page(site: Site, backend,
                                                                        tmp_path) -> None:
    customer = f"page-{uuid.uuid4()}"
    await record(site, mixed_history(customer)[:2])
    printed = await asyncio.to_thread(subprocess.run,
        [*seenby_command(), "token", "--role", "customer", "--sub", customer, "--open", "--url", site.base],
        env={**os.environ, **settings_env(backend.settings)}, cwd=tmp_path,
        capture_output=True, text=True, check=True)
    printed = printed.stdout.strip()
    assert printed.startswith(f"{site.base}/app/#token=") and "&key=" in printed
    async with browser() as chromium:
        page = await open_page(chromium, printed)
        assert await verdict(page) == "verified"


async def test_ten_thousand_entries_render_and_verify_measured(site: Site, backend) -> None:
    """Measured and reported, not asserted (timings belong to the bench): the first screen, and the
    whole check of 10,000 entries, from navigation start in the browser."""
    customer = f"page-{uuid.uuid4()}"
    await record(site, [access_event(customer, clip_id=f"clip-{n % 40}",
                                     occurred_at=f"2026-{1 + n % 11:02d}-{1 + n % 28:02d}T08:00:00Z")
                        for n in range(10_000)])
    async with browser() as chromium:
        page = await open_page(chromium, site.url(customer))
        assert await verdict(page, within=120) == "verified", await page.inner_text("#badge")
        assert "10,000" in await page.inner_text("#badge-detail")
        marks = await page.evaluate("""() => Object.fromEntries(['seenby:first-screen', 'seenby:verified']
            .map(name => [name, performance.getEntriesByName(name)[0].startTime]))""")
        # Still responsive: scrolling loads further pages of the history.
        await page.mouse.wheel(0, 20_000)
        await wait_until(page, "document.querySelectorAll('#history > li').length > 50")
    measured = {"backend": backend.name, "entries": 10_000,
                "first_screen_ms": round(marks["seenby:first-screen"]),
                "verified_ms": round(marks["seenby:verified"])}
    (artifacts() / f"performance-{backend.name}.json").write_text(json.dumps(measured, indent=1) + "\n")
    print(f"\ncustomer page, 10,000 entries on {backend.name}: "
          f"first screen {measured['first_screen_ms']} ms, "
          f"verified {measured['verified_ms']} ms")
