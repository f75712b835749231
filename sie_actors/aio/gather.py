"""`gather` for code that runs on the asyncio loop but lives outside sie_actors.aio.

asyncio is imported only under sie_actors.aio (tests/unit/test_imports.py); JetStream publishes,
each awaiting its own ack, are started together through this instead of one after another.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable


async def gather(*awaitables: Awaitable[Any]) -> list[Any]:
    return await asyncio.gather(*awaitables)
