"""Renders shared by the deploy tests: default values, production values, secrets given inline."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.deploy.chart import PRODUCTION_VALUES, Rendered, load_values, render


def new_signing_key_pem() -> str:
    """A fresh Ed25519 private key, PKCS#8 PEM: the log signing key, or (another call) the ticket key."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def inline_secret_values() -> dict[str, object]:
    """Every secret given as a value, so the chart creates its Secrets (and the hook Secret)."""
    return {
        "config": {"jwtIssuer": "https://login.example.org/", "logOrigin": "log.example.org/seenby"},
        "secrets": {
            "jwtSecret": {"value": secrets.token_hex(32)},
            "pseudonymSecret": {"value": secrets.token_hex(32)},
            "signingKey": {"value": new_signing_key_pem()},
            "ticketKey": {"value": new_signing_key_pem()},
            "databaseUrl": {"value": "postgresql+asyncpg://seenby_app:pw@db:5432/seenby"},
            "migrationDatabaseUrl": {"value": "postgresql+asyncpg://seenby_owner:pw@db:5432/seenby"},
        },
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    }


@pytest.fixture(scope="session")
def default_render() -> Rendered:
    return render()


@pytest.fixture(scope="session")
def production_render() -> Rendered:
    return render(load_values(PRODUCTION_VALUES))


@pytest.fixture(scope="session")
def inline_render() -> Rendered:
    return render(inline_secret_values())
