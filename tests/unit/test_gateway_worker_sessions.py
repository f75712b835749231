"""WorkerSessionActor under its supervisor: a dropped stream is redialled by the supervisor, and
a worker announcing itself is dialled at once instead of after the backoff (issue 12)."""

from __future__ import annotations

import trio

from sie_actors.domain.worker_status import WorkerAnnouncement
from sie_actors.runtime import Backoff
from sie_actors.testing.fake_worker import FakeStatus, FakeWorker
from sie_actors.procs.polling import wait_for
from sie_gateway.workers import Announced, WorkerDirectory, WorkerDirectoryActor


async def serve_worker(nursery: trio.Nursery, port: int | None = None):
    worker = FakeWorker(FakeStatus(name="w", bundle_config_hash="h"), heartbeat=0.2, port=port)
    scope = trio.CancelScope()

    async def run(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await worker.serve(task_status=task_status)
    await nursery.start(run)
    return worker, scope


async def test_an_announcement_dials_a_worker_at_once_not_after_the_backoff(nursery):
    worker, stop = await serve_worker(nursery)
    directory = WorkerDirectory()
    # a backoff no test waits out: only an announcement can bring the session back in time
    actor = WorkerDirectoryActor(directory, static_urls=(worker.url,), heartbeat_timeout=5.0,
                                 grace=60.0,
                                 session_backoff=lambda: Backoff(initial=1000.0, maximum=1000.0))
    await nursery.start(actor.run)
    [session] = directory.sessions
    await wait_for(lambda: session.view.connected, 10, "first connection")

    stop.cancel()  # the worker dies: the stream ends, the session actor crashes
    await wait_for(lambda: not session.view.connected
                   and session.supervisor.restart_counts["session"] >= 1, 10,
                   "the supervisor holding the session in its backoff")
    again, _ = await serve_worker(nursery, port=worker.port)  # the worker is back
    assert not session.view.connected  # nothing dials it for 1000 s ...
    await actor.ref.tell(Announced(WorkerAnnouncement("w", worker.url, "default", 5.0)))
    await wait_for(lambda: session.view.connected, 10, "dialled on the announcement")
    assert again.connections == 1
