"""The customer page under a witness policy: real `seenby witness serve` processes cosign, and the
browser checks the cosignatures against the policy the host app passes."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.keys import load_keys
from service.ledger.checkpoint import COSIGNATURE_TYPE, raw_public_key, verifier_key
from service.settings import Settings
from tests.conftest import Tokens
from tests.factories import access_event
from tests.page.harness import Site, browser, open_page, verdict, wait_until
from tests.servers import running_server, settings_env, wait_until_integrated
from tests.witness.test_witnessed_log import witness_process


def policy_fragment(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


async def test_the_page_checks_the_witnesses_quorum_from_the_hosts_policy(settings: Settings,
                                                                         tmp_path: Path) -> None:
    log_vkey = verifier_key(settings.log_origin, raw_public_key(load_keys(settings).signing_key))
    stranger = verifier_key("w3.example/witness", raw_public_key(Ed25519PrivateKey.generate()),
                            COSIGNATURE_TYPE)
    with witness_process(tmp_path / "w1", "w1.example/witness", log_vkey) as (url1, vkey1), \
            witness_process(tmp_path / "w2", "w2.example/witness", log_vkey) as (url2, vkey2):
        witnesses = f"log {log_vkey}\nwitness W1 {vkey1} {url1}\nwitness W2 {vkey2} {url2}\n"
        policy = tmp_path / "policy.txt"
        policy.write_text(witnesses + "group both all W1 W2\nquorum both\n")
        env = {**settings_env(settings), "SEENBY_WITNESS_POLICY_FILE": str(policy)}
        with running_server(env, tmp_path) as base:
            site = Site(base, Tokens.for_settings(settings), log_vkey)
            customer = f"page-{uuid.uuid4()}"
            async with httpx.AsyncClient(base_url=base, timeout=30.0) as http:
                events = [access_event(customer, clip_id=f"clip-{n}") for n in range(3)]
                response = await http.post("/v1/accesses:batch", json={"events": events},
                                           headers=site.tokens.service())
                assert response.status_code == 201, response.text
                await wait_until_integrated(http, base, [customer], site.tokens.regulator())
            async with browser() as chromium:
                hosted = site.url(customer, policy=policy_fragment(policy.read_text()))
                page = await open_page(chromium, hosted)
                await wait_until(page, "document.querySelectorAll('#history > li').length === 3")
                # The served checkpoint may trail the newest entries until both witnesses answer.
                assert await verdict(page) == "verified", await page.inner_text("#badge")
                assert "W1, W2" in await page.inner_text("#badge-detail")

                # A host app whose policy wants a witness that never cosigned: not verified, and why.
                demanding = (f"{witnesses}witness W3 {stranger}\n"
                             "group all3 all W1 W2 W3\nquorum all3\n")
                page = await open_page(chromium, site.url(customer, policy=policy_fragment(demanding)))
                assert await verdict(page) == "failed"
                failures = await page.inner_text("#badge-failures")
                assert "witnesses" in failures and "W3" in failures, failures
