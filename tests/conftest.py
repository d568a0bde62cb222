"""Fixtures: each backend migrated once, the app served over HTTP, real tokens."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from service.auth import mint_token
from service.keys import load_keys
from service.main import create_app
from service.migrate import upgrade
from service.settings import Settings
from tests.pg import ThrowawayPostgres

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Backend:
    name: str
    settings: Settings
    owner_url: str = ""  # PostgreSQL: the role that owns the tables (and bypasses nothing)


def base_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "jwt_secret": secrets.token_hex(32),
        "pseudonym_secret": secrets.token_hex(32),
        "deletion_services": ["clip-store", "training-data"],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A superuser URL: SEENBY_TEST_DATABASE_URL, or a server started from the local binaries."""
    external = os.environ.get("SEENBY_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = ThrowawayPostgres()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    if database:
        dsn = dsn.rsplit("/", 1)[0] + "/" + database
    return dsn


async def _create_database(admin_url: str) -> tuple[str, str, str]:
    """A fresh database owned by one role, used by another that only gets the migration's grants."""
    suffix = uuid.uuid4().hex[:10]
    owner, app, database = f"seenby_owner_{suffix}", f"seenby_app_{suffix}", f"seenby_{suffix}"
    connection = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        await connection.execute(f"CREATE ROLE {owner} LOGIN")
        await connection.execute(f"CREATE ROLE {app} LOGIN")
        await connection.execute(f"CREATE DATABASE {database} OWNER {owner}")
    finally:
        await connection.close()
    connection = await asyncpg.connect(_asyncpg_dsn(admin_url, database))
    try:
        await connection.execute(f"REVOKE ALL ON SCHEMA public FROM PUBLIC; "
                                 f"GRANT ALL ON SCHEMA public TO {owner}; "
                                 f"GRANT USAGE ON SCHEMA public TO {app}")
    finally:
        await connection.close()
    base = admin_url.rsplit("/", 1)[0]
    host = base.split("@", 1)[1]
    return (f"postgresql+asyncpg://{owner}@{host}/{database}",
            f"postgresql+asyncpg://{app}@{host}/{database}", database)


@pytest.fixture(scope="session")
def make_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    made: dict[str, Backend] = {}

    def _make(name: str) -> Backend:
        if name in made:
            return made[name]
        data_dir = tmp_path_factory.mktemp(f"seenby-{name}")
        if name == "sqlite":
            settings = base_settings(data_dir, database_url=f"sqlite+aiosqlite:///{data_dir}/seenby.db")
            backend = Backend(name, settings)
        else:
            admin = request.getfixturevalue("postgres_admin_url")
            owner_url, app_url, _ = asyncio.run(_create_database(admin))
            settings = base_settings(data_dir, database_url=app_url, migration_database_url=owner_url)
            backend = Backend(name, settings, owner_url=owner_url)
        upgrade(backend.settings)
        made[name] = backend
        return backend

    return _make


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, make_backend) -> Backend:
    return make_backend(request.param)


@pytest.fixture(scope="session")
def pg_backend(make_backend) -> Backend:
    return make_backend("postgresql")


class Tokens:
    """Real tokens, signed with the app's own secret, for any role."""

    def __init__(self, app: FastAPI) -> None:
        self._settings = app.state.settings
        self._keys = app.state.keys

    @classmethod
    def for_settings(cls, settings: Settings) -> Tokens:
        """Tokens for `seenby serve` processes started with these settings."""
        tokens = cls.__new__(cls)
        tokens._settings, tokens._keys = settings, load_keys(settings)
        return tokens

    def mint(self, role: str, subject: str, jurisdiction: str | None = None, ttl: int = 600) -> str:
        return mint_token(self._settings, self._keys, role=role, subject=subject,
                          ttl_seconds=ttl, jurisdiction=jurisdiction)

    def headers(self, role: str, subject: str, jurisdiction: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(role, subject, jurisdiction)}"}

    def service(self, name: str = "clip-viewer") -> dict[str, str]:
        return self.headers("service", name)

    def customer(self, customer_id: str) -> dict[str, str]:
        return self.headers("customer", customer_id)

    def regulator(self, jurisdiction: str | None = None) -> dict[str, str]:
        return self.headers("regulator", "regulator-1", jurisdiction)

    def admin(self) -> dict[str, str]:
        return self.headers("admin", "operator-1")


async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://seenby.test"
    ) as client:
        yield client


@pytest.fixture(scope="session")
def app(backend: Backend) -> FastAPI:
    return create_app(backend.settings)


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for c in serve(app):
        yield c


@pytest.fixture(scope="session")
def tokens(app: FastAPI) -> Tokens:
    return Tokens(app)


@pytest.fixture
def customer_id() -> str:
    return f"cust-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Served:
    """An app, served over HTTP, with real tokens for it."""

    app: FastAPI
    client: httpx.AsyncClient
    tokens: Tokens


@pytest.fixture(scope="session")
async def pg(pg_backend: Backend) -> AsyncIterator[Served]:
    """The app on PostgreSQL alone, for what only PostgreSQL has (roles, several processes)."""
    app = create_app(pg_backend.settings)
    async for client in serve(app):
        yield Served(app, client, Tokens(app))


@pytest.fixture
def fresh_pg(postgres_admin_url: str, tmp_path: Path) -> Backend:
    """A PostgreSQL database of its own, migrated, for tests that need the log to themselves."""
    owner_url, app_url, _ = asyncio.run(_create_database(postgres_admin_url))
    settings = base_settings(tmp_path, database_url=app_url, migration_database_url=owner_url)
    upgrade(settings)
    return Backend("postgresql", settings, owner_url=owner_url)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SEENBY_ variable from the environment: settings as given, and only those."""
    for name in list(os.environ):
        if name.startswith("SEENBY_"):
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A migrated database of the test's own, on each backend in turn."""
    if request.param == "sqlite":
        settings = base_settings(tmp_path / "seenby")
        upgrade(settings)
        return settings
    fresh: Settings = request.getfixturevalue("fresh_pg").settings
    return fresh


def superuser_url(admin_url: str, backend: Backend) -> str:
    """The superuser, connected to the backend's database: what an insider with root would use."""
    return admin_url.rsplit("/", 1)[0] + "/" + backend.settings.resolved_database_url.rsplit("/", 1)[1]
