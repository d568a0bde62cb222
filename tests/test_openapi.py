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


PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _operations() -> list[tuple[str, str, dict[str, object]]]:
    document = openapi_document()
    return [(path, method, operation) for path, item in document["paths"].items()
            for method, operation in item.items()]


def test_every_operation_lists_the_problems_it_can_answer() -> None:
    for path, method, operation in _operations():
        responses = operation["responses"]
        parameters = operation.get("parameters", [])
        label = f"{method.upper()} {path}"
        public = path.startswith("/v1/log/") or path == "/v1/tickets/jwks.json"  # CONTRACT.md: no token
        if path.startswith("/v1/") and not public:
            # OpenAPI 3.1: one requirement per role, any of which will do (test_auth checks the server agrees)
            security = operation.get("security")
            assert security and all(list(s) == ["bearer"] and len(s["bearer"]) == 1 for s in security), label
            assert {r for s in security for r in s["bearer"]} <= {"customer", "service", "regulator", "admin"}
            assert {"401", "403", "429"} <= set(responses), label
            assert "WWW-Authenticate" in responses["401"]["headers"], label
        else:
            assert "security" not in operation and "401" not in responses, label
        assert {"400", "413"} <= set(responses), label  # the URL and body limits every request meets
        if parameters or "requestBody" in operation:
            assert "422" in responses, label
        if ("{customer_id}" in path or "{entry_hash}" in path or "{request_id}" in path) and method != "put":
            assert "404" in responses, label
        for status, response in responses.items():
            if not status.startswith("2"):
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, label


def test_every_success_has_a_typed_schema() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]

    def resolve(schema: dict[str, object]) -> dict[str, object]:
        ref = schema.get("$ref")
        return schemas[str(ref).rsplit("/", 1)[1]] if ref else schema

    for path, method, operation in _operations():
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                assert response.get("content"), f"{method} {path} {status}"
                for media, content in response["content"].items():
                    schema = resolve(content["schema"])
                    assert schema.get("type") in ("object", "string"), f"{method} {path} {media}"
                    if schema["type"] == "object":
                        assert schema.get("properties"), f"{method} {path} {media}: free-form"


def test_statuses_are_enums_and_parameters_are_never_null() -> None:
    schemas = openapi_document()["components"]["schemas"]
    assert schemas["DeletionStatus"]["enum"] == ["pending", "in_progress", "completed", "rejected"]
    assert schemas["TaskStatus"]["enum"] == ["pending", "completed"]
    status = schemas["DeletionRequestView"]["properties"]["status"]
    assert status == {"$ref": "#/components/schemas/DeletionStatus"}
    for path, method, operation in _operations():
        for parameter in operation.get("parameters", []):
            assert {"type": "null"} not in parameter["schema"].get("anyOf", []), f"{method} {path}"
