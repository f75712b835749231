"""The gateway's one result inbox: `_INBOX.{router_id}.>`, gathered per request id.

Every encode request registers its request id and item count here before publishing; one
`subject_pump` reads the inbox subscription and files each `WorkResult` under its request id and item
index. A result for an unknown request (late, after a timeout, or forged) is dropped, a second
result for the same item (a redelivery that raced a slow worker) is ignored, and an item index
outside the request is dropped: a response is built only from its own request's results.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import trio

from sie_actors.inference import wire
from sie_actors.inference.wire import WorkResult

log = logging.getLogger("sie_gateway.inbox")


@dataclass(eq=False)
class Pending:
    request_id: str
    total: int
    results: dict[int, WorkResult] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)

    def file(self, result: WorkResult) -> bool:
        """Keep the first result of each of this request's items; False if it was not kept."""
        if not 0 <= result.item_index < self.total or result.item_index in self.results:
            return False
        self.results[result.item_index] = result
        if len(self.results) == self.total:
            self.done.set()
        return True


class Inbox:
    def __init__(self, router_id: str | None = None, on_drop=None) -> None:
        self.router_id = router_id or uuid.uuid4().hex
        self._pending: dict[str, Pending] = {}
        self.dropped = 0
        self._on_drop = on_drop

    @property
    def subject(self) -> str:
        return f"{wire.INBOX_PREFIX}{self.router_id}.>"

    def reply_subject(self, request_id: str) -> str:
        return wire.reply_subject(self.router_id, request_id)

    def open(self, request_id: str, total: int) -> Pending:
        pending = Pending(request_id, total)
        self._pending[request_id] = pending
        return pending

    def close(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    async def deliver(self, raw: bytes) -> None:
        try:
            result = wire.unpack_work_result(raw)
        except wire.WireError as exc:
            log.warning("dropping a bad work result: %s", exc)
            self._drop()
            return
        pending = self._pending.get(result.request_id)
        if pending is None or not pending.file(result):
            self._drop()

    def _drop(self) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop()
