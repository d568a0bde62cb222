"""create_app(): the FastAPI application, its lifespan, routers and error handling."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.constants import REF_TEMPLATE
from pydantic import TypeAdapter

from service.accesses.routes import BODY_SCHEMAS
from service.accesses.routes import router as accesses_router
from service.accesses.service import Recorder
from service.auth import Authenticator
from service.consent.routes import router as consent_router
from service.customers.routes import router as customers_router
from service.db import Database
from service.deletions.routes import router as deletions_router
from service.docs import install_docs
from service.errors import install_error_handlers
from service.exports.routes import router as exports_router
from service.history.routes import router as history_router
from service.keys import load_keys
from service.ledger.integrator import Integrator
from service.middleware import BodySizeLimit, RequestMetrics
from service.migrate import head_revision
from service.operations import router as operations_router
from service.ratelimit import RateLimiter
from service.reports.routes import router as reports_router
from service.settings import Settings, get_settings
from service.tlog.routes import router as log_router

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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keys = load_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings)
        app.state.database = database
        integrator = Integrator(database, keys.signing_key, settings.log_origin)
        app.state.integrator = integrator
        await integrator.sign_empty_log()
        app.state.recorder = Recorder(database, settings, keys.pseudonym_key)
        task = asyncio.create_task(integrator.run(), name="seenby-integrator")
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
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
    app.state.authenticator = Authenticator(settings, keys)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.state.schema_head = head_revision()
    install_error_handlers(app)
    if app.openapi_url:
        install_docs(app, app.openapi_url)
    app.include_router(operations_router)
    app.include_router(accesses_router)
    app.include_router(history_router)
    app.include_router(log_router)
    app.include_router(exports_router)
    app.include_router(reports_router)
    app.include_router(customers_router)
    app.include_router(deletions_router)
    app.include_router(consent_router)
    # Outermost first: metrics see every answer, including the body limit's 413.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics)
    _document_schemas(app, BODY_SCHEMAS)
    return app


def _document_schemas(app: FastAPI, adapters: tuple[TypeAdapter[Any], ...]) -> None:
    """Add these schemas, and those they refer to, to the OpenAPI components: FastAPI documents
    only the models of parameters it parses itself, and the recording routes parse their bodies.
    (Unlike FastAPI's own, these are not passed through jsonable_encoder: an example's null
    fields would stay.)"""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            components = generate().setdefault("components", {}).setdefault("schemas", {})
            for adapter in adapters:
                schema = adapter.json_schema(ref_template=REF_TEMPLATE)
                components.update(schema.pop("$defs", {}))
                components[schema["title"]] = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
