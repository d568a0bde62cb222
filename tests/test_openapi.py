"""The committed OpenAPI description matches the app."""

from __future__ import annotations

import json
import re

from service.openapi import DEFAULT_PATH, openapi_document, render


def test_committed_openapi_is_current() -> None:
    assert DEFAULT_PATH.read_text() == render(), (
        "openapi/openapi.json is stale: run `python -m service.openapi`"
    )


def test_every_reference_resolves_and_the_recording_bodies_are_documented() -> None:
    document = openapi_document()
    references = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert references <= set(document["components"]["schemas"]), "dangling $ref"
    single = document["paths"]["/v1/accesses"]["post"]["requestBody"]
    assert single["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AccessEvent"}
    assert {"AccessEvent", "Actor", "Action", "Medium", "Purpose"} <= references
