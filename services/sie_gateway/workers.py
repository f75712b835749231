"""Worker sessions: one WebSocket per worker, and the directory that starts and retires them.

The gateway dials `ws://<worker>/ws/status` (the original's direction) and keeps, per worker, the
last status frame and when it came. Each worker has a `WorkerSessionActor` (the design's name)
that streams its frames; a stream that ends crashes the actor, and the session's `Supervisor`
dials again with its backoff, like every other actor of the gateway. A worker that announces
itself while its session waits out that backoff is dialled at once (`Supervisor.restart_now`):
a restarted worker announces as soon as it serves, and need not wait for the gateway's backoff.
The `WorkerSession` holds what outlives an incarnation; its actor is the only writer of `view`;
HTTP handlers only read views. Health is computed at read time from the frame's `ready` flag and
its age, so a silent worker stops being eligible exactly `heartbeat_timeout` after its last frame
with no sweeper task, and a `ready: false` frame demotes at once (CONTRACT §2 item 11).

Worker URLs come from the static list (`SIE_GATEWAY_WORKERS`, `--worker`) and from announcements
on `sie.workers.announce`. An announced worker that stops announcing and is not healthy is
forgotten after a grace period, so scaled-down workers leave without a gateway restart.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import trio
import trio_websocket

from sie_actors.domain.errors import DomainError
from sie_actors.domain.worker_status import WorkerAnnouncement, WorkerStatus, status_ws_url
from sie_actors.runtime import Actor, Backoff, Mailbox, Supervisor, actor_child

log = logging.getLogger("sie_gateway.workers")


@dataclass(frozen=True)
class WorkerView:
    url: str
    status: WorkerStatus | None
    received_at: float  # trio.current_time() of the last frame
    connected: bool

    @property
    def name(self) -> str:
        return (self.status.name if self.status is not None else "") or self.url

    def healthy(self, now: float, heartbeat_timeout: float) -> bool:
        return (self.connected and self.status is not None and self.status.ready
                and now - self.received_at <= heartbeat_timeout)


class SessionLost(Exception):
    """The status stream of a worker ended; the session's supervisor dials again."""


# A session retries at its backoff's pace for as long as the worker is known: escalating would
# restart nothing better. The backoff starts over once a stream stayed up for HEALTHY_AFTER_S.
SESSION_RESTARTS_PER_WINDOW = 1_000_000
HEALTHY_AFTER_S = 2.0


class WorkerSession:
    """What outlives an incarnation of a worker's session actor: its URL, view and supervisor."""

    def __init__(self, url: str, *, static: bool, heartbeat_timeout: float,
                 connect_timeout: float = 5.0,
                 backoff: Callable[[], Backoff] = lambda: Backoff(initial=0.1, maximum=5.0)
                 ) -> None:
        self.url = url
        self.static = static
        self.heartbeat_timeout = heartbeat_timeout
        self.connect_timeout = connect_timeout
        self.view = WorkerView(url, None, 0.0, False)
        self.last_announced = trio.current_time()
        self.frames = 0
        self.cancel_scope = trio.CancelScope()
        mailbox = Mailbox(name=f"session {url}")
        self.supervisor = Supervisor(
            f"worker-session {url}",
            [actor_child("session", mailbox, lambda box: WorkerSessionActor(self, mailbox=box))],
            max_restarts=SESSION_RESTARTS_PER_WINDOW, window=60.0,
            healthy_after=HEALTHY_AFTER_S,
            backoff_factory=backoff)

    async def run(self) -> None:
        with self.cancel_scope:
            await self.supervisor.run()

    def dial_now(self) -> bool:
        """A sign of life from the worker: if the session waits to redial, redial at once."""
        return self.supervisor.restart_now("session")


class WorkerSessionActor(Actor):
    def __init__(self, session: WorkerSession, *, mailbox: Mailbox) -> None:
        super().__init__(mailbox=mailbox, name=mailbox.name)
        self.session = session

    async def background(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._stream)

    async def handle(self, message) -> object:
        raise TypeError(f"worker session: unexpected message {message!r}")

    async def _stream(self) -> None:
        session = self.session
        try:
            async with trio_websocket.open_websocket_url(
                    status_ws_url(session.url), connect_timeout=session.connect_timeout,
                    disconnect_timeout=1.0, message_queue_size=4) as ws:
                log.info("worker %s connected", session.url)
                while True:
                    # A worker sends a heartbeat frame every second; silence this long means
                    # the connection is dead even if TCP has not noticed.
                    with trio.fail_after(session.heartbeat_timeout):
                        message = await ws.get_message()
                    try:
                        status = WorkerStatus.parse(message)
                    except DomainError as exc:
                        log.warning("worker %s sent a bad frame: %s", session.url, exc.message)
                        continue
                    session.frames += 1
                    session.view = WorkerView(session.url, status, trio.current_time(), True)
        except (OSError, trio_websocket.HandshakeError, trio_websocket.ConnectionClosed,
                trio.TooSlowError) as exc:
            if trio.current_effective_deadline() == -math.inf:
                # We are being cancelled (the worker retired, the gateway stopping): closing the
                # socket may raise, but that is not a lost worker, and raising here would put a
                # SessionLost beside the Cancelled in a group no supervisor restarts.
                return
            raise SessionLost(f"worker {session.url}: {exc!r}") from None
        finally:
            session.view = WorkerView(session.url, session.view.status,
                                      session.view.received_at, False)


class WorkerDirectory:
    """The set of sessions, as an immutable tuple readers can iterate without a lock."""

    def __init__(self) -> None:
        self.sessions: tuple[WorkerSession, ...] = ()

    def views(self) -> Iterable[WorkerView]:
        return (session.view for session in self.sessions)


@dataclass(frozen=True)
class Announced:
    announcement: WorkerAnnouncement


class WorkerDirectoryActor(Actor):
    """Starts a session per known worker URL and forgets announced workers that went away."""

    def __init__(self, directory: WorkerDirectory, *, static_urls: tuple[str, ...],
                 heartbeat_timeout: float, grace: float, mailbox=None,
                 session_backoff: Callable[[], Backoff] | None = None) -> None:
        super().__init__(mailbox=mailbox, name="workers")
        self.session_backoff = session_backoff
        self.directory = directory
        self.static_urls = static_urls
        self.heartbeat_timeout = heartbeat_timeout
        self.grace = grace
        self._nursery: trio.Nursery | None = None
        self._by_url: dict[str, WorkerSession] = {}

    async def background(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.directory.sessions = ()
        for url in self.static_urls:
            self._add(url, static=True)
        nursery.start_soon(self._sweep)

    async def handle(self, message) -> object:
        if isinstance(message, Announced):
            url = message.announcement.url
            known = self._by_url.get(url)
            if known is not None:
                known.last_announced = trio.current_time()
                if not known.view.connected and known.dial_now():
                    log.info("worker %s announced itself: dialling at once", url)
                return None
            log.info("worker %s (%s) announced itself", url, message.announcement.name)
            self._add(url, static=False)
        elif message == "sweep":
            self._forget_departed()
        else:
            raise TypeError(f"workers: unexpected message {message!r}")
        return None

    def _add(self, url: str, *, static: bool) -> None:
        extra = {"backoff": self.session_backoff} if self.session_backoff is not None else {}
        session = WorkerSession(url, static=static, heartbeat_timeout=self.heartbeat_timeout,
                                **extra)
        self._by_url[url] = session
        self.directory.sessions = self.directory.sessions + (session,)
        self._nursery.start_soon(session.run)

    def _forget_departed(self) -> None:
        now = trio.current_time()
        keep = []
        for session in self.directory.sessions:
            gone = (not session.static and now - session.last_announced > self.grace
                    and not session.view.healthy(now, self.heartbeat_timeout))
            if gone:
                log.info("worker %s stopped announcing; forgetting it", session.url)
                session.cancel_scope.cancel()
                self._by_url.pop(session.url, None)
            else:
                keep.append(session)
        if len(keep) != len(self.directory.sessions):
            self.directory.sessions = tuple(keep)

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(min(5.0, self.grace / 2))
            await self.ref.tell("sweep")
