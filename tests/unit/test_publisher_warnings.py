"""The warning a client gets says what really happened to the deltas (issue 15)."""

from __future__ import annotations

from sie_actors.actors.publisher import FAILED_WARNING, PublishDeltas, PublisherActor
from sie_actors.domain.delta import ConfigDelta
from sie_actors.nats.link import PublishReport


class FakeLink:
    connected = True

    def __init__(self, confirm) -> None:
        self.confirm = confirm

    async def publish_confirmed(self, batch):
        return PublishReport(tuple(self.confirm(subject) for subject, _ in batch))


def delta(bundle: str) -> ConfigDelta:
    return ConfigDelta("sie-config", bundle, 1, "h", "m/x", ("p",), "sie_id: m/x\n", (bundle,))


async def publish(nursery, confirm, bundles):
    actor = PublisherActor(FakeLink(confirm))
    nursery.start_soon(actor.run)
    return await actor.ref.ask(PublishDeltas(tuple(delta(b) for b in bundles)))


async def test_both_publishes_failing_says_failed_not_partial(nursery):
    result = await publish(nursery, lambda subject: False, ["default"])
    assert result.result == "failure"
    assert result.warnings == (FAILED_WARNING,)
    assert result.warnings[0].startswith("nats_publish_failed")


async def test_some_bundles_failing_says_partial(nursery):
    result = await publish(nursery, lambda subject: not subject.endswith(".b"), ["a", "b"])
    assert result.result == "partial"
    assert result.failed_bundles == ("b",)
    assert result.warnings[0].startswith("nats_publish_partial")
