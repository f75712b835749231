"""Give fsspec's IO thread a plain asyncio loop, whatever event-loop policy is installed.

s3fs and gcsfs run their coroutines on one loop that fsspec creates in a background thread with
`asyncio.new_event_loop()`. In our services trio-asyncio is imported for NATS and installs its
own policy, so that call would build a trio-asyncio loop in a foreign thread, which fails
("greenlet.error: Cannot switch to a different thread") and every store call times out. We fill
fsspec's loop slot first, with a standard selector loop, the same way fsspec would.

This is the one asyncio import outside `sie_actors.nats`: it belongs to fsspec's thread, not ours.
"""

from __future__ import annotations

import asyncio
import threading

import fsspec.asyn


def ensure_plain_fsspec_loop() -> None:
    if fsspec.asyn.loop[0] is not None:
        return
    with fsspec.asyn.get_lock():
        if fsspec.asyn.loop[0] is None:
            loop = asyncio.SelectorEventLoop()
            thread = threading.Thread(target=loop.run_forever, name="fsspecIO", daemon=True)
            thread.start()
            fsspec.asyn.loop[0] = loop
            fsspec.asyn.iothread[0] = thread
