"""Pause Python's cyclic garbage collector while a snapshot is built in bulk.

Building a registry of 10,000 models allocates millions of objects and frees almost none, so
the collector's thresholds keep firing and each older-generation pass walks the whole heap,
the previous snapshot included, for nothing: measured, a gateway's snapshot build of 10,000
models took 0.64-0.85 s with the collector on and 0.25-0.40 s with it paused. Reference counting
still frees everything acyclic meanwhile; the collector resumes right after.

The switch is process-wide, so use this only around bounded bulk work (a bootstrap, a resync, a
restore), never around anything that waits.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
