"""schemathesis, every check and phase, against `seenby serve` with each role's token: whatever the
server answers, the OpenAPI document said it could."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.migrate import upgrade
from service.openapi import openapi_document
from service.paging import MAX_SEQ, encode_cursor
from service.settings import Settings
from service.vocabulary import CURSOR_FORMAT
from tests.conftest import Backend, Tokens, _create_database, base_settings
from tests.servers import running_server, settings_env

CUSTOMER = "cust-1042"  # the customer of the documented examples
ROLES = {"service": "clip-store", "customer": CUSTOMER, "regulator": "regulator-1", "admin": "operator-1"}
PUBLIC = "public"  # the operations that take no token, called without one
MAX_EXAMPLES = 25

# Schema-valid requests the server rejects for reasons no JSON Schema can state (the log's current
# size, one parameter against another, a cursor it never issued): the fields such a 422 may name,
# by operation. Each operation's 422 description says which; any other 422 still fails the check.
NOT_IN_ANY_SCHEMA = {
    "/v1/log/proof/inclusion": {"query.tree_size", "query.log_index"},
    "/v1/log/proof/consistency": {"query.second", "query.first"},
    "/v1/exports/accesses": {"query.tree_size", "query.since"},
    "/v1/exports/accesses/manifest": {"query.tree_size", "query.since"},
    "/v1/reports/transparency": {"query.since"},
    "/v1/admin/customers": {"body.customers"},
    "/v1/customers/{customer_id}/entries": {"query.tree_size"},
    "/v1/me/entries": {"query.tree_size"},
    **{path: {"query.since"} for path in ("/v1/customers/{customer_id}/accesses", "/v1/me/accesses",
                                          "/v1/customers/{customer_id}/accesses/summary",
                                          "/v1/me/accesses/summary")},
}
SCHEMA_ERROR = "the request does not match the schema"

# A cursor names a page only when this service issued it: the documented format, drawn as issued.
schemathesis.openapi.format(CURSOR_FORMAT, st.integers(0, MAX_SEQ).map(encode_cursor))


@schemathesis.check
def positive_data_accepted_but_for_state(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """positive_data_acceptance, less the rejections NOT_IN_ANY_SCHEMA allows."""
    if response.status_code == 422:
        problem = response.json()
        fields = {error["field"] for error in problem.get("errors", [])}
        allowed = NOT_IN_ANY_SCHEMA.get(case.operation.path, set()) | {"query.cursor"}
        if problem["detail"] != SCHEMA_ERROR and fields and fields <= allowed:
            return None
    return positive_data_acceptance(ctx, response, case)


@pytest.fixture(scope="module")
def isolated(backend: Backend, request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A database of its own: what schemathesis records (any Unicode at all) stays out of the
    tests that share the backend's."""
    data_dir = tmp_path_factory.mktemp(f"schemathesis-{backend.name}")
    if backend.name == "sqlite":
        settings = base_settings(data_dir, database_url=f"sqlite+aiosqlite:///{data_dir}/seenby.db")
    else:
        owner_url, app_url, _ = asyncio.run(_create_database(request.getfixturevalue("postgres_admin_url")))
        settings = base_settings(data_dir, database_url=app_url, migration_database_url=owner_url)
    upgrade(settings)
    return settings


@pytest.fixture(scope="module")
def served(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Event streams end after a fifth of a second: each request of schemathesis gets a whole answer.
    env = {**settings_env(isolated), "SEENBY_EVENT_STREAM_MAX_SECONDS": "0.2"}
    with running_server(env, tmp_path_factory.mktemp("schemathesis")) as url:
        _seed(url, Tokens.for_settings(isolated))
        yield url


def _seed(url: str, tokens: Tokens) -> None:
    """Something for the documented examples to find: accesses of both actor types, consent, a grant,
    a decision, a deletion request with its tasks."""
    event = openapi_document()["components"]["schemas"]["AccessEvent"]["examples"][0]
    algorithm = {"type": "algorithm", "id": "clip-classifier", "role": "clip classifier", "version": "3"}
    with httpx.Client(base_url=url, timeout=30) as client:
        service, customer = tokens.service("clip-store"), tokens.customer(CUSTOMER)
        for actor in (event["actor"], algorithm):
            response = client.post("/v1/accesses", headers=service,
                                   json={**event, "event_id": str(uuid.uuid4()), "actor": actor})
            assert response.status_code == 201, response.text
        assert client.put(f"/v1/customers/{CUSTOMER}/consent", headers=customer,
                          json={"human_review": True}).status_code == 200
        assert client.post(f"/v1/customers/{CUSTOMER}/troubleshooting-grants", headers=customer,
                           json={"clip_id": "clip-77a1"}).status_code == 201
        decision = {k: event[k] for k in ("customer_id", "clip_id", "actor", "action", "purpose")}
        assert client.post("/v1/access-decisions", headers=service, json=decision).status_code == 201
        assert client.post(f"/v1/customers/{CUSTOMER}/deletion-requests", headers=customer,
                           json={"clip_ids": ["clip-9"]}).status_code == 202


def operations_for(document: dict[str, Any], caller: str) -> list[str]:
    """The operations (as schemathesis names them, "GET /v1/me/accesses") that `caller` may call: a
    role, those whose security names it; PUBLIC, those without security. That every other operation
    refuses a role with 403 is test_auth's test_every_operation_refuses_the_roles_it_does_not_name."""
    return [f"{method.upper()} {path}"
            for path, operations in document["paths"].items() for method, operation in operations.items()
            if (caller == PUBLIC and "security" not in operation)
            or any(caller in requirement.get("bearer", ()) for requirement in operation.get("security", ()))]


def _config(url: str, token: str | None) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "base-url": url,
        "seed": 20261124,
        "headers": {"Authorization": f"Bearer {token}"} if token else {},
        "workers": 1,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"positive_data_acceptance": {"enabled": False}},
    })


class Run(NamedTuple):
    failures: Counter[str]  # by check
    lines: list[str]  # a line a failure
    checks: set[str]  # the checks that ran
    operations: set[str]  # the operations that ran


def run_schemathesis(url: str, token: str | None, operations: list[str]) -> Run:
    """`operations` of the document the server publishes, sending `token` (if any)."""
    config = _config(url, token)
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config).include(name=operations)
    failures: Counter[str] = Counter()
    lines: list[str] = []
    ran: set[str] = set()
    tested: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.label is not None:
                tested.add(event.label)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    ran.add(check.name)
                    if check.failure_info is None:
                        continue
                    failures[check.name] += 1
                    case = event.recorder.cases[case_id].value
                    interaction = event.recorder.interactions.get(case_id)
                    answer = interaction.response if interaction is not None else None
                    lines.append(
                        f"{check.name}: {case.method} {case.formatted_path} query={case.query} "
                        f"body={str(case.body)[:200]}: {check.failure_info.failure.title}: "
                        f"{check.failure_info.failure.message} -> "
                        f"{answer.status_code if answer else ''} {answer.content[:300] if answer else ''!r}"
                    )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures["error"] += 1
            lines.append(f"error: {event.info.message if hasattr(event, 'info') else event}")
    return Run(failures, lines, ran, tested)


@pytest.mark.parametrize("caller", [*sorted(ROLES), PUBLIC])
def test_the_server_answers_only_what_the_document_says(served: str, isolated: Settings, caller: str) -> None:
    token = Tokens.for_settings(isolated).mint(caller, ROLES[caller]) if caller in ROLES else None
    operations = operations_for(httpx.get(f"{served}/openapi.json").json(), caller)
    assert len(operations) >= 5, operations
    failures, lines, ran, tested = run_schemathesis(served, token, operations)
    assert tested == set(operations), set(operations) ^ tested
    assert {"positive_data_accepted_but_for_state", "negative_data_rejection", "status_code_conformance",
            "content_type_conformance", "response_schema_conformance", "not_a_server_error"} <= ran, ran
    assert not failures, f"{dict(failures)}\n" + "\n".join(sorted(set(lines))[:60])


