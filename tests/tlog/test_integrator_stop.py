"""The integrator stops when told to, whatever it was waiting for (the server's shutdown waits on it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.db import Database
from service.keys import load_keys
from service.ledger.integrator import Integrator
from service.migrate import upgrade
from tests.conftest import base_settings


async def test_cancelled_just_as_entries_arrive_the_integrator_stops(tmp_path: Path) -> None:
    settings = base_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/seenby.db")
    await asyncio.to_thread(upgrade, settings)
    database = Database(settings)
    integrator = Integrator(database, load_keys(settings).signing_key, settings.log_origin,
                            idle_seconds=30, pass_interval_seconds=0)
    running = asyncio.create_task(integrator.run())
    try:
        await asyncio.sleep(0.5)  # an empty queue: it waits for news of entries
        # The news and the cancellation in one step of the event loop. asyncio.wait_for on
        # Python 3.11 returned the news and dropped the cancellation: the task ran on forever.
        database.appended.set()
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=3)
        assert done, "the integrator ignored its cancellation"
        assert running.cancelled()
    finally:
        running.cancel()
        await database.dispose()
