"""One model's host: owns its adapter and runs everything CPU-heavy on a thread of its own.

Loading (reading weights, building the graph) and every encode run on one dedicated thread, never
on the trio thread, so status frames, heartbeats and config deltas stay on time while a batch
runs. A bounded number of batches may wait for that thread; one more is refused at once with
``QueueFull`` rather than queued without limit, so the pull loop can hand the items back to the
queue for another worker. Results come back to trio through the run's ``TrioToken``.

States: ``loading`` → ``loaded`` | ``failed`` (terminal, keeps the ``ModelLoadFailed``), and
``closed`` after ``aclose``. Asking a loading host to encode raises ``ModelLoading``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import trio

from sie_actors.inference.adapters.base import EmbeddingAdapter, EncodeOptions
from sie_actors.inference.errors import (InferenceError, InferenceFailed, ModelLoadFailed,
                                         ModelLoading, ModelUnloaded, QueueFull)

LOADING, LOADED, FAILED, CLOSED = "loading", "loaded", "failed", "closed"
DEFAULT_MAX_PENDING = 4


@dataclass(frozen=True)
class EncodeResult:
    vectors: np.ndarray
    inference_ms: float
    followup: Any = None     # what the caller's `then` returned, on the host thread


@dataclass
class Job:
    """A batch handed to a host (`submit`); `result` waits for it in trio."""

    texts: Sequence[str]
    options: EncodeOptions
    then: Callable[..., Any] | None = None
    then_wakes: bool = False
    done: trio.Event = field(default_factory=trio.Event)
    abandoned: bool = False
    result: EncodeResult | None = None
    error: BaseException | None = None


_STOP = object()


class _WakeLatch:
    """A wake-up that `then` may ask for before the host has stored what `then` returned (its
    send can finish on another thread first): it happens once both are true, never before."""

    def __init__(self, deliver: Callable[[], None]) -> None:
        self._deliver = deliver
        self._lock = threading.Lock()
        self._arrived: set[str] = set()

    def wake(self) -> None:
        """`then` asks for the wake-up (from any thread)."""
        self._arrive("wake")

    def arm(self) -> None:
        """The host has stored what `then` returned."""
        self._arrive("arm")

    def _arrive(self, who: str) -> None:
        with self._lock:
            self._arrived.add(who)
            ready = len(self._arrived) == 2
        if ready:
            self._deliver()


class ModelHost:
    def __init__(self, model_id: str, loader: Callable[[], EmbeddingAdapter], *,
                 max_pending: int = DEFAULT_MAX_PENDING,
                 load_slot: threading.Semaphore | None = None) -> None:
        self.model_id = model_id
        self.max_pending = max_pending
        self.state = LOADING
        self.load_error: ModelLoadFailed | None = None
        self.load_seconds: float | None = None
        self.adapter: EmbeddingAdapter | None = None
        self.thread_id: int | None = None
        self._loader = loader
        self._load_slot = load_slot
        self._jobs: queue.Queue = queue.Queue()
        self._computing = threading.Lock()   # held while a batch runs, wherever it runs
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._settled = trio.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None

    # --- trio side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the host's thread, which loads the model first. Call from inside trio."""
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._run, name=f"model-host:{self.model_id}",
                                        daemon=True)
        self._thread.start()

    async def wait_settled(self) -> str:
        """Wait until loading ended (``loaded`` or ``failed``); returns the state."""
        await self._settled.wait()
        return self.state

    @property
    def pending(self) -> int:
        return self._pending

    async def encode(self, texts: Sequence[str], options: EncodeOptions = EncodeOptions(), *,
                     then: Callable[..., Any] | None = None,
                     then_wakes: bool = False) -> EncodeResult:
        """The batch's vectors: `submit` and `result` in one call, from trio."""
        return await self.result(self.submit(texts, options, then=then, then_wakes=then_wakes))

    def submit(self, texts: Sequence[str], options: EncodeOptions = EncodeOptions(), *,
               then: Callable[..., Any] | None = None, then_wakes: bool = False,
               here_if_idle: bool = False) -> "Job":
        """Queue a batch for the host thread, from trio or from the NATS loop's thread (the
        worker's fast lane starts a fetched batch without waking trio); `result` waits for it.

        `then(result)`, if given, runs on the host thread as soon as the vectors are computed,
        before trio hears of it, and what it returns comes back as `result.followup`: the
        caller's way to send results on without a trip through trio. With `then_wakes`, it is
        called as `then(result, wake)` and owns `wake` (call it once, from any thread, when
        trio may hear of the result): a reply can then leave before trio's bookkeeping
        competes with it for the interpreter. If `then` raises, the host wakes trio itself.
        Raises `ModelLoading`, the kept `ModelLoadFailed`, `ModelUnloaded` or `QueueFull` at
        once.

        `here_if_idle` (the fast lane, for a one-item batch, never from trio): when nothing is
        queued or running, compute the batch on the calling thread before returning, `then`
        included. Why: the host thread's wake-up and the one back to the NATS loop cost ~0.4 ms
        of a one-item request on a busy 2-core machine, more than the loop's other work loses
        by waiting one batch. Otherwise it is queued as usual."""
        if self.state == LOADING:
            raise ModelLoading(f"model {self.model_id!r} is loading")
        if self.state == FAILED:
            assert self.load_error is not None
            raise self.load_error
        if self.state == CLOSED:
            raise ModelUnloaded(f"model {self.model_id!r} is not loaded")
        with self._pending_lock:
            if self._pending >= self.max_pending:
                raise QueueFull(f"model {self.model_id!r} already has {self._pending} batches "
                                "waiting")
            self._pending += 1
        job = Job(list(texts), options, then, then_wakes)
        if here_if_idle and self._jobs.empty() and self._computing.acquire(blocking=False):
            try:
                self._execute(job, self.adapter)
            finally:
                self._computing.release()
            return job
        self._jobs.put(job)
        return job

    async def result(self, job: "Job") -> EncodeResult:
        """Wait in trio for a submitted batch; its result, or the error it ended with."""
        try:
            await job.done.wait()
        except BaseException:
            job.abandoned = True      # the thread skips it if it has not started it yet
            raise
        finally:
            with self._pending_lock:
                self._pending -= 1
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    async def aclose(self) -> None:
        """Stop accepting work, fail what is queued, and wait for the thread to finish the batch
        it is running (compute cannot be interrupted) without blocking trio."""
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self._settled.set()
        self._jobs.put(_STOP)
        if self._thread is not None:
            await trio.to_thread.run_sync(self._thread.join)

    # --- host thread (or the caller's, for `here_if_idle`) -----------------------------------

    def _execute(self, job: "Job", adapter: EmbeddingAdapter | None) -> None:
        """Compute one job (holding `_computing`), run its `then`, and let trio hear of it."""
        if adapter is None or self.state == CLOSED:
            job.error = ModelUnloaded(f"model {self.model_id!r} is not loaded")
        else:
            t0 = time.perf_counter()
            try:
                vectors = adapter.encode(job.texts, job.options)
                job.result = EncodeResult(vectors, (time.perf_counter() - t0) * 1000.0)
                if job.then is not None and job.then_wakes:
                    latch = _WakeLatch(partial(self._deliver, job.done.set))
                    job.result = replace(job.result, followup=job.then(job.result, latch.wake))
                    latch.arm()           # trio hears of it when `then` says so
                    return
                if job.then is not None:
                    job.result = replace(job.result, followup=job.then(job.result))
            except InferenceError as exc:
                job.error = exc
            except Exception as exc:  # the original's legacy code for any inference failure
                job.error = InferenceFailed(f"{type(exc).__name__}: {exc}")
        self._deliver(job.done.set)

    def _deliver(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._token is not None
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            pass                      # trio is gone; nobody is waiting any more

    def _loaded(self, adapter: EmbeddingAdapter | None, error: ModelLoadFailed | None,
                seconds: float) -> None:
        self.load_seconds = seconds
        if self.state == CLOSED:
            return
        if error is not None:
            self.state, self.load_error = FAILED, error
        else:
            self.state, self.adapter = LOADED, adapter
        self._settled.set()

    def _run(self) -> None:
        self.thread_id = threading.get_ident()
        start = time.perf_counter()
        try:
            with self._load_slot or contextlib.nullcontext():
                adapter = self._loader()
            error = None
        except ModelLoadFailed as exc:
            adapter, error = None, exc
        except Exception as exc:  # a loader bug must still end up as a terminal, named failure
            adapter = None
            error = ModelLoadFailed(f"cannot load {self.model_id!r}: {type(exc).__name__}: {exc}")
        self._deliver(self._loaded, adapter, error, time.perf_counter() - start)
        if adapter is None:
            return   # a failed host answers from its kept error; no job ever waits for it
        while True:
            job = self._jobs.get()
            if job is _STOP:
                break
            if job.abandoned:
                continue
            with self._computing:
                self._execute(job, adapter)
        # fail whatever was queued behind the stop marker
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                job.error = ModelUnloaded(f"model {self.model_id!r} was unloaded")
                self._deliver(job.done.set)
