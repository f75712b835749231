"""Glue between actors and supervisors: one helper, so the restart pattern is written once.

The pattern is: one :class:`Mailbox` created up front (its ref is what the rest of the service
holds), and a *fresh* actor instance per incarnation. A crash therefore never leaks
half-updated state into the next incarnation, while queued messages and refs carry over.
Actors that must remember something across restarts reload it in ``on_start``.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from .actor import Actor
from .mailbox import Mailbox
from .supervisor import ChildSpec, RestartPolicy


def actor_child(
    name: str,
    mailbox: Mailbox,
    factory: Callable[[Mailbox], Actor],
    *,
    restart: RestartPolicy = "permanent",
) -> ChildSpec:
    """A ChildSpec that builds ``factory(mailbox)`` anew for each incarnation and runs it.

    The mailbox is stopped when the supervisor will not run the child again, so asks waiting
    in it fail with ``ActorStopped`` rather than hang.
    """

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        actor = factory(mailbox)
        if actor.mailbox is not mailbox:
            raise ValueError(
                f"factory for {name!r} built an actor on another mailbox; pass it the one given"
            )
        await actor.run(task_status=task_status)

    return ChildSpec(name, run, restart, on_terminate=mailbox.stop)
