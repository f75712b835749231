"""asyncio's `gather` and one turn of the loop, for code that runs on the asyncio loop but lives
outside sie_actors.aio.

asyncio is imported only under sie_actors.aio (tests/unit/test_imports.py); JetStream publishes,
each awaiting its own ack, are started together through `gather` instead of one after another.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable


async def gather(*awaitables: Awaitable[Any]) -> list[Any]:
    return await asyncio.gather(*awaitables)


async def one_turn() -> None:
    """Let the loop run what is already scheduled (`asyncio.sleep(0)`) before going on."""
    await asyncio.sleep(0)
