"""The actor kernel: actors with mailboxes, ask/reply, supervisors with backoff.

Everything a service needs to build its supervision tree is importable from here. The usual
shape of a service::

    writer_box = Mailbox(name="writer")                 # created once; its ref is handed out
    root = Supervisor("sie-config", [
        actor_child("writer", writer_box, lambda mb: WriterActor(store, mailbox=mb)),
        ChildSpec("nats", nats_supervisor.run),          # supervisors nest
    ])
    await nursery.start(root.run)                        # children started in order
    reply = await writer_box.ref.ask(PutModel(...))     # from an HTTP handler
"""

from __future__ import annotations

from .actor import Actor
from .backoff import Backoff
from .errors import ActorError, ActorStopped, AskTimeout, MailboxFull, SupervisorEscalation
from .mailbox import DEFAULT_MAILBOX_SIZE, ActorRef, Envelope, Mailbox
from .reply import ReplySlot
from .supervisor import ChildSpec, RestartPolicy, Supervisor
from .wiring import actor_child

__all__ = [
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorError",
    "ActorRef",
    "ActorStopped",
    "AskTimeout",
    "Backoff",
    "ChildSpec",
    "Envelope",
    "Mailbox",
    "MailboxFull",
    "ReplySlot",
    "RestartPolicy",
    "Supervisor",
    "SupervisorEscalation",
    "actor_child",
]
