"""The committed OpenAPI description matches the app."""

from __future__ import annotations

from service.openapi import DEFAULT_PATH, render


def test_committed_openapi_is_current() -> None:
    assert DEFAULT_PATH.read_text() == render(), (
        "openapi/openapi.json is stale: run `python -m service.openapi`"
    )
