from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Backend, Tokens
from tests.page.harness import Site
from tests.servers import running_server, settings_env


@pytest.fixture(scope="module")
def site(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`seenby serve` on each backend, as an operator runs it, for the browser to open."""
    cwd = tmp_path_factory.mktemp("page")
    with running_server(settings_env(backend.settings), cwd) as base:
        key = httpx.get(f"{base}/v1/log/key").text.strip()
        yield Site(base, Tokens.for_settings(backend.settings), key)
