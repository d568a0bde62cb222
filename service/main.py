"""create_app(): the FastAPI application, its lifespan, routers and error handling."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.constants import REF_TEMPLATE
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.routing import Match
from starlette.types import Scope

from service.accesses.routes import BODY_SCHEMAS
from service.accesses.routes import router as accesses_router
from service.accesses.service import Recorder
from service.auth import Authenticator, Role, RoleRequirement, authenticate
from service.completeness.routes import router as completeness_router
from service.consent.routes import router as consent_router
from service.customers.routes import router as customers_router
from service.db import Database
from service.deletions.routes import router as deletions_router
from service.docs import install_docs
from service.errors import Problem, install_error_handlers, problem_responses
from service.events.hub import EventHub
from service.events.routes import router as events_router
from service.exports.routes import ExportSlots
from service.exports.routes import router as exports_router
from service.history.routes import router as history_router
from service.keys import load_keys
from service.ledger.integrator import Integrator
from service.middleware import BodySizeLimit, RequestMetrics
from service.migrate import head_revision
from service.notices.deliverer import Deliverer
from service.notices.routes import router as notices_router
from service.objections.routes import router as objections_router
from service.operations import router as operations_router
from service.page.routes import PageFiles
from service.ratelimit import RateLimiter
from service.reports.routes import router as reports_router
from service.settings import Settings, get_settings
from service.tickets.routes import REQUEST as TICKET_REQUEST
from service.tickets.routes import router as tickets_router
from service.tickets.service import TicketIssuer
from service.tlog.routes import router as log_router
from service.tlog.service import Witnessing, oldest_provable_size
from service.witness.policy import load_policy
from service.witness.submitter import Submitter

# The collector's thresholds, young to old. A full collection walks every object that requests still
# hold (a waiting 1,000-event batch is tens of thousands), about 15 ms each; by default one runs
# after every 10 middle-generation passes. Recording 200,000 events in 1,000-event batches ran 67
# of them (1.05 s of CPU) in the two workers, against 6 with 100, for 16.2k -> 17.1-17.4k events/s
# (python -m bench.ingest_probe --events 200000; one run, then two). The young generations keep
# their defaults: larger ones cost more per pass than they save in passes. Cyclic garbage that
# reaches the old generation lives 10x as many allocations: server RSS in three default benchmark
# runs was 135-142 MiB after 500,000 entries and 144-161 after a million (143-156 and 163-172 in
# the three runs before this change).
GC_THRESHOLDS = (700, 10, 100)

DESCRIPTION = """\
seenby records every human or algorithmic access to a customer's camera clips in an
append-only, tamper-evident ledger. Internal services record accesses; customers read
who touched their clips and why; regulators read any customer's history.

Every `/v1` endpoint takes `Authorization: Bearer <JWT>` with a `roles` claim
(`customer`, `service`, `regulator`, `admin`). Errors are `application/problem+json`.
"""


ROUTERS = (operations_router, accesses_router, history_router, log_router, exports_router,
           reports_router, customers_router, deletions_router, consent_router, tickets_router,
           completeness_router, objections_router, notices_router, events_router)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keys = load_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings)
        app.state.database = database
        integrator = Integrator(database, keys.signing_key, settings.log_origin,
                                provable_from=oldest_provable_size(
                                    app.state.witnessing, settings.witness_timeout_seconds))
        app.state.integrator = integrator
        await integrator.sign_empty_log()
        app.state.recorder = Recorder(database, settings, keys.pseudonym_key)
        app.state.ticket_issuer = TicketIssuer(app.state.recorder, settings, keys)
        task = asyncio.create_task(integrator.run(), name="seenby-integrator")
        submitter = None
        if app.state.witnessing.policy is not None:
            submitter = Submitter(database, app.state.witnessing.policy, settings.witness_timeout_seconds)
            integrator.on_signed = submitter.wake
            submitting = asyncio.create_task(submitter.run(integrator.leading), name="seenby-witnesses")
        deliverer = None
        if settings.webhook_url:
            deliverer = Deliverer(database, settings, keys.webhook_secrets)
            delivering = asyncio.create_task(deliverer.run(integrator.leading), name="seenby-notices")
        app.state.event_hub = EventHub(database, settings)
        watching = asyncio.create_task(app.state.event_hub.run(), name="seenby-event-streams")
        # Everything alive now (modules, app, tables) lives as long as the process: out of the
        # collector's sight, a full collection walks only what requests allocate, so a pause of
        # tens of milliseconds does not land in some request's latency.
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            await app.state.recorder.close()
            for background in (task, watching, *([submitting] if submitter else []),
                               *([delivering] if deliverer else [])):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            if submitter is not None:
                await submitter.close()
            if deliverer is not None:
                await deliverer.close()
            await database.dispose()

    docs = settings.docs_enabled
    app = FastAPI(
        title="seenby",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: service.docs, without a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.witnessing = Witnessing(load_policy(settings.witness_policy_file), settings.witness_fail_open)
    app.state.authenticator = Authenticator(settings, keys)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.state.export_slots = ExportSlots(settings.export_streams_per_process,
                                         settings.export_send_timeout_seconds)
    app.state.schema_head = head_revision()
    install_error_handlers(app, allowed_methods=_allowed_methods)
    if app.openapi_url:
        install_docs(app, app.openapi_url)
    for router in ROUTERS:
        app.include_router(router)
    if settings.page_enabled:
        app.mount("/app", PageFiles(settings.page_frame_ancestors), name="customer-page")
    # Outermost first: metrics see every answer, including the body limit's 413.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics)
    _document_schemas(app, (*BODY_SCHEMAS, TICKET_REQUEST, TypeAdapter(Problem)))
    return app


def _document_schemas(app: FastAPI, adapters: tuple[TypeAdapter[Any], ...]) -> None:
    """Add these schemas, and those they refer to, to the OpenAPI components: FastAPI documents
    only the models of parameters it parses itself, and the recording routes parse their bodies.
    (Unlike FastAPI's own, these are not passed through jsonable_encoder: an example's null
    fields would stay.) Then say what every operation can answer besides its own statuses
    (_document_problems)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for adapter in adapters:
                schema = adapter.json_schema(ref_template=REF_TEMPLATE)
                components.update(schema.pop("$defs", {}))
                components[schema["title"]] = schema
            _document_problems(document, ROUTERS)
        assert app.openapi_schema is not None  # generate() kept it
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# The operations that never touch the database: every other one answers 503 while it is unreachable.
_NO_DATABASE = {("/healthz", "get"), ("/v1/log/key", "get"), ("/v1/tickets/jwks.json", "get")}
BEARER = "bearer"


def _document_problems(document: dict[str, Any], routers: tuple[APIRouter, ...]) -> None:
    """The statuses that come from what an operation is rather than from what it does: a token
    (401, 403, 429), parameters or a body (422), the URL and body limits every request meets (400 for
    a NUL in the URL, 413), the database (503),
    each as problem+json. Optional parameters are optional, never null, on the wire."""
    document["components"].setdefault("securitySchemes", {})[BEARER] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A JWT whose `roles` claim holds customer, service, regulator or admin. Each "
                       "operation's security names the roles it lets through, one requirement per role: "
                       "a token whose `roles` claim holds any one of them will do.",
    }
    # The routers' own routes: what FastAPI keeps in app.routes for an included router varies by version.
    for route in (r for router in routers for r in router.routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            parameters = operation.get("parameters", [])
            wanted: list[int] = []
            descriptions: dict[str, str] = {}
            if _calls(route.dependant, authenticate):
                roles = _roles(route.dependant)
                # OpenAPI 3.1: for an http scheme, a requirement's list names roles; with one
                # requirement per role, a token holding any one of them will do.
                operation["security"] = [{BEARER: [role]} for role in roles] or [{BEARER: []}]
                if roles:
                    descriptions["s403"] = (f"The token's role may not use this operation, which is for "
                                            f"{' or '.join(roles)} tokens.")
                wanted += [401, 403, 429]
            if parameters or "requestBody" in operation:
                wanted.append(422)
                if responses.get("422", {}).get("description") == "Validation Error":
                    del responses["422"]  # FastAPI's, as application/json: ours is a problem
            # The middleware's, before any route: a NUL anywhere in the URL, any query string
            # included (400); a body over the limit, whatever the method (413).
            wanted += [400, 413]
            if (route.path_format, method.lower()) not in _NO_DATABASE:
                wanted.append(503)
            for status, response in problem_responses(*wanted, **descriptions).items():
                responses.setdefault(str(status), response)
            operation["responses"] = dict(sorted(responses.items()))
            for parameter in parameters:
                parameter["schema"] = _not_null(parameter["schema"])
    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _allowed_methods(scope: Scope) -> set[str]:
    return {
        method
        for router in ROUTERS for route in router.routes
        if isinstance(route, APIRoute) and route.matches(scope)[0] is not Match.NONE
        for method in route.methods or ()
    }


def _roles(dependant: Dependant) -> tuple[Role, ...]:
    """The roles the operation's RoleRequirement lets through; () when it has none. One at most: two
    would let through only the roles both name, which the document would have to work out."""
    requirements = list(_role_requirements(dependant))
    if len(requirements) > 1:
        raise ValueError(f"{dependant.path}: more than one RoleRequirement")
    return requirements[0].roles if requirements else ()


def _role_requirements(dependant: Dependant) -> Iterator[RoleRequirement]:
    if isinstance(dependant.call, RoleRequirement):
        yield dependant.call
    for dependency in dependant.dependencies:
        yield from _role_requirements(dependency)


def _calls(dependant: Dependant, function: Any) -> bool:
    return dependant.call is function or any(_calls(d, function) for d in dependant.dependencies)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter that may be left out is documented by FastAPI as `anyOf: [T, null]`; a
    client cannot send a null, only leave the parameter out (`required: false`)."""
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**branches[0], **rest}
