"""Exceptions raised by the actor kernel.

They live in one module so that ``actor``, ``mailbox`` and ``supervisor`` can share them without
importing each other, and so callers can catch the whole family with :class:`ActorError`.
"""

from __future__ import annotations


class ActorError(Exception):
    """Base of every error a caller of an :class:`~sie_actors.runtime.ActorRef` can see."""


class ActorStopped(ActorError):
    """The actor is gone, or stopped before it replied.

    Raised to a teller/asker when the mailbox is stopped (no incarnation will ever read it again),
    and delivered to an asker whose message was being handled when the actor died. It is never
    raised merely because the actor is *restarting*: messages sent then wait in the mailbox.
    """


class AskTimeout(ActorError, TimeoutError):
    """No reply arrived within the ask's timeout.

    Also a :class:`TimeoutError`, so generic timeout handling catches it. The message may still
    be handled later; its reply is then dropped. Callers must treat the outcome as unknown.
    """


class MailboxFull(ActorError):
    """``tell_nowait`` found the mailbox at capacity; nothing was enqueued.

    Callers that can wait should use ``await tell(...)`` instead, which applies back-pressure.
    """


class SupervisorEscalation(Exception):
    """A child failed too often; its supervisor gave up and cancelled its other children.

    The child's last error is chained as ``__cause__`` (``None`` if the child kept returning
    normally). A parent supervisor treats this like any other crash of the supervisor child and
    restarts the whole subtree, which is how failures climb the tree.
    """

    def __init__(self, supervisor: str, child: str, failures: int, window: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r}: child {child!r} failed {failures} times "
            f"within {window:g}s; escalating"
        )
        self.supervisor = supervisor
        self.child = child
        self.failures = failures
        self.window = window
