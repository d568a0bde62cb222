from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from service.migrate import upgrade
from tests.conftest import BACKENDS, Backend, Tokens, _create_database, base_settings
from tests.page.harness import Site
from tests.servers import running_server, settings_env


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """A database of the module's own on each backend: `seenby serve` runs alone on it, never next
    to the in-process apps other modules leave on the session's shared databases."""
    data_dir = tmp_path_factory.mktemp(f"page-{request.param}")
    if request.param == "sqlite":
        settings = base_settings(data_dir, database_url=f"sqlite+aiosqlite:///{data_dir}/seenby.db")
        made = Backend("sqlite", settings)
    else:
        owner_url, app_url, _ = asyncio.run(_create_database(request.getfixturevalue("postgres_admin_url")))
        settings = base_settings(data_dir, database_url=app_url, migration_database_url=owner_url)
        made = Backend("postgresql", settings, owner_url=owner_url)
    upgrade(made.settings)
    return made


@pytest.fixture(scope="module")
def site(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`seenby serve` on each backend, as an operator runs it, for the browser to open."""
    cwd = tmp_path_factory.mktemp("page")
    with running_server(settings_env(backend.settings), cwd) as base:
        key = httpx.get(f"{base}/v1/log/key").text.strip()
        yield Site(base, Tokens.for_settings(backend.settings), key)
