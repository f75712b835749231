"""The mailbox and the reference others hold to reach an actor.

The mailbox is deliberately separate from the :class:`~sie_actors.runtime.actor.Actor` object: an
actor *incarnation* is disposable (a supervisor replaces it after a crash), but the queue of
messages addressed to it is not. Everyone holds an :class:`ActorRef` to the mailbox, so refs stay
valid across restarts and messages sent while the actor is restarting are handled by the next
incarnation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import trio

from .errors import ActorStopped, AskTimeout, MailboxFull
from .reply import ReplySlot

DEFAULT_MAILBOX_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Envelope:
    """One queued message; ``reply`` is set for an ask and ``None`` for a tell."""

    message: Any
    reply: ReplySlot[Any] | None = None


class Mailbox:
    """A bounded queue of envelopes that outlives the actor incarnations reading it.

    Lifecycle: a mailbox is *open* from creation. At most one incarnation is *attached* (reading)
    at a time, which is what makes processing serial. :meth:`stop` declares that nobody will read
    it again: queued asks fail with :class:`ActorStopped`, queued tells are dropped, and later
    sends raise :class:`ActorStopped` instead of waiting for a reply that can never come.
    Attaching a new incarnation to a stopped mailbox reopens it (a parent supervisor restarted
    the subtree), so a ref is never permanently dead while something may still run the actor.
    """

    def __init__(self, size: int = DEFAULT_MAILBOX_SIZE, *, name: str | None = None) -> None:
        if size < 1:
            # A zero-size channel would make every tell a rendezvous with the actor, which
            # defeats the point of a mailbox and makes tell_nowait almost always fail.
            raise ValueError(f"mailbox size must be >= 1, got {size!r}")
        self.size = size
        self.name = name or f"mailbox-{id(self):x}"
        self._send, self._receive = trio.open_memory_channel[Envelope](size)
        self._attached = False
        self._stopped = False
        self.ref = ActorRef(self)

    # -- state -------------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called and no incarnation has reattached since."""
        return self._stopped

    @property
    def attached(self) -> bool:
        """True while an incarnation is reading this mailbox."""
        return self._attached

    @property
    def pending(self) -> int:
        """Messages queued and not yet taken by the actor (for a queue-depth gauge)."""
        return self._send.statistics().current_buffer_used

    # -- sending -----------------------------------------------------------------------------

    async def put(self, envelope: Envelope) -> None:
        """Enqueue, waiting while the mailbox is full (back-pressure on the sender)."""
        if self._stopped:
            raise ActorStopped(f"{self.name} is stopped")
        # Bind the channel now: if the mailbox is stopped and reopened while we wait, we must
        # fail on the channel we were waiting on, not silently land in the new one.
        send = self._send
        try:
            await send.send(envelope)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorStopped(f"{self.name} stopped while the message was being sent") from None

    def put_nowait(self, envelope: Envelope) -> None:
        """Enqueue or raise :class:`MailboxFull` at once."""
        if self._stopped:
            raise ActorStopped(f"{self.name} is stopped")
        try:
            self._send.send_nowait(envelope)
        except trio.WouldBlock:
            raise MailboxFull(f"{self.name} is full ({self.size} messages)") from None

    # -- reading (used by Actor.run only) -----------------------------------------------------

    def attach(self) -> trio.MemoryReceiveChannel[Envelope]:
        """Claim the mailbox for one incarnation and return the channel to read from."""
        if self._attached:
            raise RuntimeError(
                f"{self.name} already has a running actor; two readers would break the "
                "one-message-at-a-time guarantee"
            )
        if self._stopped:
            self._send, self._receive = trio.open_memory_channel[Envelope](self.size)
            self._stopped = False
        self._attached = True
        return self._receive

    def detach(self) -> None:
        """Release the mailbox; queued messages stay for the next incarnation."""
        self._attached = False

    def stop(self) -> None:
        """Declare that no incarnation will read this mailbox again. Idempotent, synchronous.

        Synchronous (no checkpoint) so it can run in ``finally`` blocks of cancelled tasks, and
        so that draining and closing happen atomically with respect to other trio tasks. An
        attached incarnation sees the mailbox close and returns normally; under a supervisor
        that would count as a (permanent) child returning, so supervised mailboxes are stopped
        by the supervisor itself (``ChildSpec.on_terminate``), not by hand. Senders blocked on a
        full mailbox are let in and then drained: their asks fail, their tells are dropped.
        """
        if self._stopped:
            return
        self._stopped = True
        while True:
            try:
                envelope = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if envelope.reply is not None:
                envelope.reply.set_error(ActorStopped(f"{self.name} stopped before replying"))
        # Closing the receive side wakes blocked senders with BrokenResourceError (turned into
        # ActorStopped by put) and wakes an attached reader with ClosedResourceError.
        self._receive.close()
        self._send.close()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("attached" if self._attached else "idle")
        return f"<Mailbox {self.name} {state} pending={self.pending}/{self.size}>"


class ActorRef:
    """The handle other components hold to talk to an actor.

    It points at the :class:`Mailbox`, never at an actor object, so it survives restarts.
    Equality is identity of the mailbox, so refs can be used as dict keys.
    """

    __slots__ = ("_mailbox",)

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    @property
    def name(self) -> str:
        return self._mailbox.name

    @property
    def mailbox(self) -> Mailbox:
        return self._mailbox

    async def tell(self, message: Any) -> None:
        """Send without waiting for a reply; waits while the mailbox is full."""
        await self._mailbox.put(Envelope(message))

    def tell_nowait(self, message: Any) -> None:
        """Send without waiting at all; raises :class:`MailboxFull` if the mailbox is full."""
        self._mailbox.put_nowait(Envelope(message))

    async def ask(self, message: Any, timeout: float | None = 5.0) -> Any:
        """Send ``message`` and return the actor's reply.

        The timeout covers both waiting for room in the mailbox and waiting for the reply, so an
        overloaded actor cannot hold a caller longer than ``timeout``. ``None`` waits forever.
        An exception raised by the actor's ``handle`` is re-raised here.
        """
        if timeout is not None and (math.isnan(timeout) or timeout < 0):
            raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
        slot: ReplySlot[Any] = ReplySlot()
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        # move_on_at rather than fail_after: a TooSlowError raised by the actor's handle() and
        # delivered to us must not be mistaken for our own timeout.
        with trio.move_on_at(deadline):
            try:
                await self._mailbox.put(Envelope(message, slot))
                return await slot.wait()
            finally:
                # Timed out, cancelled or done: either way nobody will read a later reply.
                slot.abandon()
        raise AskTimeout(f"no reply from {self.name} within {timeout}s")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._mailbox is self._mailbox

    def __hash__(self) -> int:
        return id(self._mailbox)

    def __repr__(self) -> str:
        return f"<ActorRef {self.name}>"
