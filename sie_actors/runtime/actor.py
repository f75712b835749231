"""The Actor base class: one task, one mailbox, one message at a time.

Serial processing is the point. Because ``handle`` never runs twice concurrently for the same
mailbox, an actor's own state needs no locks, and an actor that owns a resource (the
WriterActor owns the store) *is* the lock for that resource.

Failure semantics, chosen deliberately:

* An exception from ``handle`` for an **ask** is delivered to the asker and the actor carries
  on. The asker is the one party that can act on it (an invalid write request is an ordinary
  answer, not a broken actor), and handlers are expected to validate before they mutate.
* An exception from ``handle`` for a **tell** crashes the actor. There is nobody to report to;
  swallowing it would hide bugs and keep running on state that may be half-updated. Crashing
  hands the problem to the supervisor, which builds a fresh incarnation.
* Whatever stops the actor (crash, cancellation, a background loop failing), an ask that was
  being handled at that moment fails with :class:`ActorStopped` instead of hanging.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from .errors import ActorError, ActorStopped, AskTimeout, MailboxFull
from .mailbox import DEFAULT_MAILBOX_SIZE, ActorRef, Envelope, Mailbox

__all__ = [
    "Actor",
    "ActorError",
    "ActorRef",
    "ActorStopped",
    "AskTimeout",
    "Mailbox",
    "MailboxFull",
]

logger = logging.getLogger("sie_actors.runtime")


class Actor:
    """Base class for every actor. Subclasses implement :meth:`handle`.

    Pass a ``mailbox`` to share it with future incarnations (see
    :func:`~sie_actors.runtime.actor_child`); that is how queued messages and refs survive a
    restart. Without one the actor creates and *owns* its mailbox, and stops it when ``run``
    exits: a standalone actor that dies leaves refs that fail fast with :class:`ActorStopped`
    rather than refs whose asks hang until their timeout.
    """

    #: Default capacity for a mailbox the actor creates itself.
    mailbox_size: int = DEFAULT_MAILBOX_SIZE
    #: How long ``on_stop`` may take; it runs shielded from cancellation, so it must be bounded.
    stop_timeout: float = 5.0

    def __init__(
        self,
        *,
        mailbox: Mailbox | None = None,
        mailbox_size: int | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or (mailbox.name if mailbox is not None else type(self).__name__)
        if mailbox is None:
            self._mailbox = Mailbox(mailbox_size or self.mailbox_size, name=self.name)
            self._owns_mailbox = True
        else:
            if mailbox_size is not None and mailbox_size != mailbox.size:
                raise ValueError("mailbox_size conflicts with the size of the given mailbox")
            self._mailbox = mailbox
            self._owns_mailbox = False
        self._current: Envelope | None = None

    @property
    def mailbox(self) -> Mailbox:
        return self._mailbox

    @property
    def ref(self) -> ActorRef:
        """The handle to give to others; valid across restarts when the mailbox is shared."""
        return self._mailbox.ref

    # -- hooks for subclasses -----------------------------------------------------------------

    async def handle(self, message: Any) -> object:
        """Process one message; the return value is the reply to an ask."""
        raise NotImplementedError(f"{type(self).__name__} must implement handle()")

    async def on_start(self) -> None:
        """Called before the first message; if it raises, the actor never reports started."""

    async def on_stop(self) -> None:
        """Called on every exit after a successful ``on_start``, shielded and bounded."""

    async def background(self, nursery: trio.Nursery) -> None:
        """Start sibling loops (timers, pollers) in ``nursery``; they die with the actor.

        A loop that raises crashes the actor, exactly like a tell that raises. Loops that need
        the actor's state should send it messages (``self.ref.tell``) rather than touch it, so
        state changes stay serialised through ``handle``.
        """

    # -- running -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox until cancelled, crashed, or the mailbox is stopped.

        ``task_status.started()`` is called after ``on_start`` and ``background`` have run, so a
        supervisor using ``nursery.start`` knows the actor is ready before starting the next
        child. Returns normally only when the mailbox is stopped.
        """
        receive = self._mailbox.attach()
        try:
            await self.on_start()
            try:
                await self._serve_with_background(receive, task_status)
            finally:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self.stop_timeout
                    await self.on_stop()
                if scope.cancelled_caught:
                    logger.warning("actor %s: on_stop exceeded %ss", self.name, self.stop_timeout)
        finally:
            current, self._current = self._current, None
            if current is not None and current.reply is not None:
                current.reply.set_error(ActorStopped(f"{self.name} stopped while handling the ask"))
            self._mailbox.detach()
            if self._owns_mailbox:
                self._mailbox.stop()

    async def _serve_with_background(
        self,
        receive: trio.MemoryReceiveChannel[Envelope],
        task_status: trio.TaskStatus[None],
    ) -> None:
        crash: Exception | None = None
        async with trio.open_nursery() as nursery:
            await self.background(nursery)
            task_status.started()
            try:
                await self._serve(receive)
            except Exception as exc:
                # Catch here and re-raise below the nursery so a crash from a tell reaches the
                # supervisor as itself, not wrapped in an ExceptionGroup by this nursery.
                crash = exc
            nursery.cancel_scope.cancel()
        if crash is not None:
            raise crash

    async def _serve(self, receive: trio.MemoryReceiveChannel[Envelope]) -> None:
        while True:
            try:
                envelope = await receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return  # the mailbox was stopped: nobody will send to this actor again
            self._current = envelope
            if envelope.reply is None:
                await self.handle(envelope.message)  # raising here crashes the actor
            else:
                try:
                    result = await self.handle(envelope.message)
                except Exception as exc:
                    envelope.reply.set_error(exc)
                else:
                    envelope.reply.set_result(result)
            self._current = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self._mailbox!r}>"
