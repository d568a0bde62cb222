"""Webhook settings: Standard Webhooks secrets only, a development secret generated once, and
production's refusals (no secret, the development secret, retries for less than a day)."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import pytest

from service.keys import DEV_WEBHOOK_SECRET_FILE, KeyConfigurationError, load_keys, new_key_pem
from service.settings import Settings
from tests.notices.harness import new_secret

URL = "https://notify.example/hooks/seenby"


pytestmark = pytest.mark.usefixtures("clean_env")


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _production(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    for name in ("log.pem", "ticket.pem"):
        if not (tmp_path / name).exists():
            (tmp_path / name).write_bytes(new_key_pem())
    return {"env": "production", "data_dir": tmp_path / "data",
            "database_url": "postgresql+asyncpg://app@db.internal/seenby",
            "jwt_secret": secrets.token_hex(32), "pseudonym_secret": secrets.token_hex(32),
            "signing_key_file": tmp_path / "log.pem", "ticket_key_file": tmp_path / "ticket.pem",
            "jwt_issuer": "https://id.example.com", "webhook_url": URL, **overrides}


@pytest.mark.parametrize("secret", [
    "a plain password of some length", "whsec_", "whsec_!!!!",
    "whsec_" + base64.b64encode(b"x" * 16).decode(),
    "whsec_" + base64.b64encode(b"x" * 65).decode(), new_secret().removeprefix("whsec_"),
], ids=["password", "empty", "not-base64", "too-short", "too-long", "no-prefix"])
def test_only_standard_webhooks_secrets_are_taken(secret: str) -> None:
    with pytest.raises(ValueError, match="SEENBY_WEBHOOK_SECRET"):
        _settings(webhook_url=URL, webhook_secret=secret)


def test_unknown_types_and_urls_are_refused() -> None:
    with pytest.raises(ValueError, match=r"access\.seen"):
        _settings(webhook_types="access.human,access.seen")
    for url in ("notify.example/hooks", "ftp://notify.example/hooks"):
        with pytest.raises(ValueError, match="SEENBY_WEBHOOK_URL"):
            _settings(webhook_url=url)
    chosen = _settings(webhook_types=" access.human , objection.filed")
    assert chosen.webhook_types == ["access.human", "objection.filed"]


def test_development_generates_the_secret_once_into_the_data_folder(tmp_path: Path) -> None:
    settings = _settings(data_dir=tmp_path, webhook_url=URL)
    [first] = load_keys(settings).webhook_secrets
    assert first.startswith("whsec_") and len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    written = tmp_path / DEV_WEBHOOK_SECRET_FILE
    assert written.read_text().strip() == first and written.stat().st_mode & 0o077 == 0
    assert load_keys(settings).webhook_secrets == (first,)
    assert not (tmp_path / "other").exists()
    # Without a URL nothing is generated.
    assert load_keys(_settings(data_dir=tmp_path / "other")).webhook_secrets == ()
    assert not (tmp_path / "other" / DEV_WEBHOOK_SECRET_FILE).exists()


def test_production_needs_its_own_secret_and_a_day_of_retries(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SEENBY_WEBHOOK_SECRET"):
        _settings(**_production(tmp_path))
    with pytest.raises(ValueError, match="SEENBY_WEBHOOK_RETRY_SECONDS"):
        _settings(**_production(tmp_path, webhook_secret=new_secret(), webhook_retry_seconds=3600))
    accepted = _settings(**_production(tmp_path, webhook_secret=new_secret()))
    assert load_keys(accepted).webhook_secrets == (accepted.webhook_secret,)
    # The secret development generated is not a production secret, not even as the old one of two.
    [development] = load_keys(_settings(data_dir=tmp_path / "data", webhook_url=URL)).webhook_secrets
    for secret in (development, f"{new_secret()} {development}"):
        with pytest.raises(KeyConfigurationError, match="development secrets"):
            load_keys(_settings(**_production(tmp_path, webhook_secret=secret)))


def test_several_secrets_the_newest_first_each_a_standard_webhooks_secret() -> None:
    new, old = new_secret(), new_secret()
    rotating = _settings(webhook_url=URL, webhook_secret=f"  {new}\n\t{old} ")
    assert rotating.webhook_secrets == (new, old)
    assert rotating.webhook_secret == f"{new} {old}"
    for refused, says in (
        (f"{new} {old.removeprefix('whsec_')}", r"\(secret 2 of 2\) must start with whsec_"),
        (f"{new},{old}", "must be whsec_ followed by base64"),
        (f"{new} whsec_{base64.b64encode(b'x' * 8).decode()}", r"\(secret 2 of 2\)"),
        (f"{new} {new}", "the same secret twice"),
    ):
        with pytest.raises(ValueError, match=says) as refusal:
            _settings(webhook_url=URL, webhook_secret=refused)
        assert new not in str(refusal.value) and old not in str(refusal.value)  # never printed
