"""Health, readiness, metrics and the error surface operators and clients see."""

from __future__ import annotations

import base64
import socket

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError

from service.main import create_app
from service.metrics import REGISTRY
from service.migrate import head_revision
from service.paging import encode_cursor
from tests.conftest import Backend, Tokens, serve
from tests.factories import access_event


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["schema"] == head_revision()


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    await client.post("/v1/accesses", json=access_event(customer_id), headers=tokens.service())
    await client.get(f"/v1/customers/{customer_id}/accesses", headers=tokens.customer(customer_id))
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'seenby_http_requests_total{method="POST",route="/v1/accesses",status="201"}' in text
    assert 'route="/v1/customers/{customer_id}/accesses"' in text
    assert customer_id not in text, "raw paths never become labels"
    # Latency by route and status too: a 201 and a 403 on one route are two series.
    await client.post("/v1/accesses", json=access_event(customer_id), headers=tokens.customer(customer_id))
    text = (await client.get("/metrics")).text
    for status in ("201", "403"):
        assert ('seenby_http_request_duration_seconds_count{method="POST",route="/v1/accesses",'
                f'status="{status}"}}') in text, status
    assert 'seenby_entries_recorded_total{kind="access"}' in text


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert set(missing.json()) >= {"type", "title", "status", "detail"}
    wrong_method = await client.delete("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


async def test_log_and_ops_endpoints_need_no_token_but_v1_does(client: httpx.AsyncClient) -> None:
    for url in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(url)).status_code == 200
    response = await client.get("/v1/me/accesses")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_cors_is_closed_by_default(client: httpx.AsyncClient) -> None:
    response = await client.options("/v1/accesses", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers


async def test_unexpected_errors_are_problems_without_internals(backend: Backend) -> None:
    app = create_app(backend.settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail at /srv/seenby/db.py line 42")

    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret internal detail" not in response.text and "Traceback" not in response.text
    assert response.json()["status"] == 500


class _DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter wraps: a driver error with its SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"server said {sqlstate} at /srv/seenby/db.py")
        self.sqlstate = sqlstate


def _wrapped(sqlstate: str, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT secret FROM t", {}, _DriverError(sqlstate), connection_invalidated=invalidated)


UNREACHABLE = [
    ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)"),
    OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."),  # a name with two addresses
    socket.gaierror(-2, "Name or service not known"),
    TimeoutError(),  # asyncpg's connect timeout
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    _wrapped("57P03"),  # starting up, through SQLAlchemy
    _wrapped("08006"),  # connection failure
    _wrapped("53300"),  # too many connections
    _wrapped("XX000", invalidated=True),  # anything on a connection SQLAlchemy found lost
]


def _error_id(error: Exception) -> str:
    return f"{type(error).__name__}-{getattr(getattr(error, 'orig', error), 'sqlstate', '')}"


@pytest.mark.parametrize("error", [*UNREACHABLE, _wrapped("23505"), _wrapped("42P01")], ids=_error_id)
async def test_an_unreachable_database_is_503_and_other_database_errors_500(
    backend: Backend, error: Exception
) -> None:
    app = create_app(backend.settings)

    @app.get("/database-error")
    async def database_error() -> None:
        raise error

    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as client:
        response = await client.get("/database-error")
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text and "/srv/seenby" not in response.text
    assert "10.0.0.5" not in response.text
    if any(error is unreachable for unreachable in UNREACHABLE):
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
    else:
        assert response.status_code == 500 and "retry-after" not in response.headers


async def test_callers_over_their_rate_get_429_with_retry_after(backend: Backend, customer_id: str) -> None:
    settings = backend.settings.model_copy(update={"rate_limit_per_second": 1.0, "rate_limit_burst": 3.0})
    app = create_app(settings)
    tokens = Tokens(app)
    async for client in serve(app):
        statuses = [(await client.get("/v1/me/accesses", headers=tokens.customer(customer_id))).status_code
                    for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        limited = await client.get("/v1/me/accesses", headers=tokens.customer(customer_id))
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) >= 1
        other = await client.get("/v1/me/accesses", headers=tokens.customer(f"{customer_id}-2"))
        assert other.status_code == 200, "one caller's limit is not another's"


async def test_nul_characters_never_reach_the_database(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    for url in (f"/v1/customers/{customer_id}%00x/accesses", "/v1/me/accesses?clip_id=a%00b"):
        response = await client.get(url, headers=tokens.regulator() if "customers" in url
                                    else tokens.customer(customer_id))
        assert response.status_code == 400, url
        assert response.headers["content-type"] == "application/problem+json"
    body = {**access_event(customer_id), "customer_id": "x\u0000y"}
    response = await client.post("/v1/accesses", json=body, headers=tokens.service())
    assert response.status_code == 422


@pytest.mark.parametrize("path", ["/healthz", "/v1/log/key", "/v1/log/checkpoint", "/v1/tickets/jwks.json"])
async def test_the_url_and_body_limits_hold_on_routes_without_parameters_as_documented(
    client: httpx.AsyncClient, path: str
) -> None:
    """Every operation's OpenAPI lists 400 and 413: the middleware's limits come before any route."""
    nul = await client.get(f"{path}?x=%00")
    assert nul.status_code == 400 and nul.headers["content-type"] == "application/problem+json"
    huge = await client.request("GET", path, content=b"x" * (1024 * 1024 + 1))
    assert huge.status_code == 413 and huge.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("url", [
    "/v1/customers/{c}/accesses?since=0001-01-01T00:00:00%2B05:00",
    "/v1/customers/{c}/accesses?until=9999-12-31T23:59:59-05:00",
    "/v1/exports/accesses/manifest?until=9999-12-31T23:59:59-05:00",
    "/v1/reports/transparency?since=0001-01-01T00:00:00%2B05:00",
    "/v1/customers/{c}/accesses?cursor=" + encode_cursor(2**64),
])
async def test_out_of_range_parameters_are_422(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, url: str
) -> None:
    response = await client.get(url.format(c=customer_id), headers=tokens.regulator())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def _forged_cursor(position: str) -> str:
    """A cursor as this service spells them, around a position it never issued."""
    return base64.urlsafe_b64encode(f"after:{position}".encode()).decode().rstrip("=")


# Cursors that carry a string position (UUIDs, "<entry id>.<type>"): each once answered 500, a NUL
# on PostgreSQL (its text refuses one) and a huge number on both backends (bound to a BIGINT or a
# SMALLINT column).
@pytest.mark.parametrize("position", ["\u0000", "0190a7b2-\u0000", "1." + "9" * 62, "9" * 40 + ".1",
                                      "1.70000", "1.\u0661", "é"])
@pytest.mark.parametrize(("role", "url"), [
    ("customer", "/v1/customers/{c}/deletion-requests"),
    ("service", "/v1/deletion-tasks"),
    ("admin", "/v1/notices/dead-letters"),
])
async def test_a_forged_cursor_is_422_wherever_it_is_read(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str, role: str, url: str, position: str
) -> None:
    headers = {"customer": tokens.customer(customer_id), "service": tokens.service("clip-store"),
               "admin": tokens.admin()}[role]
    response = await client.get(url.format(c=customer_id), params={"cursor": _forged_cursor(position)},
                                headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "cursor" in response.text


def _recorded(kind: str) -> float:
    return REGISTRY.get_sample_value("seenby_entries_recorded_total", {"kind": kind}) or 0.0


async def test_entries_recorded_count_each_committed_entry_once(
    client: httpx.AsyncClient, tokens: Tokens, customer_id: str
) -> None:
    kinds = ("access", "consent_changed", "deletion_requested", "deletion_task_completed",
             "deletion_completed")
    before = {kind: _recorded(kind) for kind in kinds}
    events = [access_event(customer_id) for _ in range(3)]
    created = await client.post("/v1/accesses:batch", json={"events": events}, headers=tokens.service())
    assert created.status_code == 201
    replay = await client.post("/v1/accesses:batch", json={"events": events}, headers=tokens.service())
    assert replay.status_code == 200
    clash = {**events[0], "clip_id": "another-clip"}
    conflict = await client.post("/v1/accesses:batch", json={"events": [access_event(customer_id), clash]},
                                 headers=tokens.service())
    assert conflict.status_code == 409  # rolled back whole: nothing of it counts
    consent = await client.put(f"/v1/customers/{customer_id}/consent", json={"human_review": True},
                               headers=tokens.customer(customer_id))
    assert consent.status_code == 200
    filed = await client.post(f"/v1/customers/{customer_id}/deletion-requests", json={"scope": "all"},
                              headers=tokens.customer(customer_id))
    assert filed.status_code == 202
    for task in filed.json()["tasks"]:
        done = await client.post(f"/v1/deletion-tasks/{task['id']}/complete", json={"evidence": "wiped"},
                                 headers=tokens.service(task["service"]))
        assert done.status_code == 200
    tasks = len(filed.json()["tasks"])
    assert {kind: _recorded(kind) - before[kind] for kind in kinds} == {
        "access": 3, "consent_changed": 1, "deletion_requested": 1, "deletion_task_completed": tasks,
        "deletion_completed": 1,
    }
