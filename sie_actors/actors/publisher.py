"""PublisherActor: turns a committed write into NATS deltas and reports what was confirmed.

Wire format (kept for compatibility with the original's consumers): one message per affected
bundle on `sie.config.models.{bundle}`, and the same bytes on `sie.config.models._all`. A write is
never rolled back for a publish problem (it is already durable); instead the reply carries the
warning the client sees, and gateways close the gap through the epoch poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from sie_actors.domain.delta import ALL_SUBJECT, ConfigDelta, bundle_subject
from sie_actors.nats.link import NatsLink
from sie_actors.runtime import Actor

log = logging.getLogger("sie_actors.publisher")

@dataclass(frozen=True)
class PublishDeltas:
    deltas: tuple[ConfigDelta, ...]


@dataclass(frozen=True)
class PublishResult:
    result: str  # success | partial | failure | skipped
    failed_bundles: tuple[str, ...]
    warnings: tuple[str, ...]


def partial_warning(failed: Sequence[str]) -> str:
    listed = "[" + ", ".join(repr(b) for b in failed) + "]"
    return (f"nats_publish_partial: Config persisted but NATS notification failed for bundle(s) "
            f"{listed}. Workers on those bundles will stay on the previous epoch until the "
            f"gateway's periodic epoch poll triggers a re-export.")


FAILED_WARNING = ("nats_publish_failed: Config persisted but NATS notification failed. "
                  "Workers may not be updated.")


class PublisherActor(Actor):
    def __init__(self, link: NatsLink, publishes_counter=None, *, mailbox=None) -> None:
        super().__init__(mailbox=mailbox, name="publisher")
        self.link = link
        self._counter = publishes_counter

    async def handle(self, message: PublishDeltas) -> PublishResult:
        deltas = message.deltas
        if not deltas:
            return PublishResult("skipped", (), ())
        if not self.link.connected:
            self._count("failure")
            log.warning("NATS not connected at publish time; epoch %d not delivered",
                        deltas[0].epoch)
            return PublishResult("failure", tuple(d.bundle_id for d in deltas), (FAILED_WARNING,))
        batch: list[tuple[str, bytes]] = []
        for delta in deltas:
            payload = delta.to_json_bytes()
            batch.append((bundle_subject(delta.bundle_id), payload))
            batch.append((ALL_SUBJECT, payload))
        report = await self.link.publish_confirmed(batch)
        failed = tuple(delta.bundle_id for i, delta in enumerate(deltas)
                       if not (report.confirmed[2 * i] and report.confirmed[2 * i + 1]))
        if not failed:
            self._count("success")
            return PublishResult("success", (), ())
        result = "failure" if len(failed) == len(deltas) else "partial"
        self._count(result)
        log.warning("NATS publish %s for epoch %d, bundles %s", result, deltas[0].epoch, failed)
        warning = FAILED_WARNING if result == "failure" else partial_warning(failed)
        return PublishResult(result, failed, (warning,))

    def _count(self, result: str) -> None:
        if self._counter is not None:
            self._counter.labels(result).inc()
