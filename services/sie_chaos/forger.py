"""The "forged deltas" fault: garbage and lies on the config subjects, under the trusted id.

Anyone who may publish on NATS can claim to be sie-config (`router_id` is only a name), so the
mirrors must survive what such a publisher sends. For the length of the fault, in bursts, on
`_all` and on every bundle's subject:

    far_future        a well-formed model at epoch 10**12 of the current generation
    next              a forged model at sie-config's epoch + 1, without a hash (nothing on the
                      delta contradicts it: only sie-config can)
    wrong_generation  a forged model at epoch + 1 of a generation that does not exist
    malformed_json    bytes that are not a delta at all
    malformed_yaml    a well-formed delta whose `model_config` is not a model document

A mirror holds a delta that does not prove itself with its bundle hash until one read of
sie-config's epoch judges it, so a forged model should never show; the checker's invariants (no
unexpected model at the end, every replica equal to sie-config) are what holds it to that. The epochs forged at `epoch + 1` are recorded,
so the checker does not count a replica healing back from one as an epoch regression.
"""

from __future__ import annotations

import random
from typing import Sequence

import httpx
import trio

from sie_actors.domain.delta import ALL_SUBJECT, ConfigDelta, bundle_subject
from sie_actors.nats.link import NatsLink, NatsSettings

from sie_chaos.history import History

FORGED_PREFIX = "chaos-forged/"
KINDS = ("far_future", "next", "wrong_generation", "malformed_json", "malformed_yaml")
BURST_INTERVAL = 0.1


def forged_payload(kind: str, epoch: int, generation: str, bundle: str, serial: int) -> bytes:
    model_id = f"{FORGED_PREFIX}m{serial}"
    text = (f"sie_id: {model_id}\nprofiles:\n  default:\n    adapter_path: "
            f"sie_server.adapters.sentence_transformer:X\n    max_batch_tokens: 64\n")
    if kind == "malformed_json":
        return b'{"router_id": "sie-config", "epoch": ' + str(serial).encode() + b", "
    if kind == "malformed_yaml":
        text = "sie_id: [unclosed\nprofiles: !!python/tuple [1, 2]\n"
    forged_epoch = {"far_future": 10**12}.get(kind, epoch + 1)
    forged_generation = f"forged-{serial}" if kind == "wrong_generation" else generation
    return ConfigDelta(router_id="sie-config", bundle_id=bundle, epoch=forged_epoch,
                       bundle_config_hash="", model_id=model_id, profiles_added=("default",),
                       model_config=text, affected_bundles=(bundle,),
                       generation=forged_generation).to_json_bytes()


async def forge_for(duration: float, *, nats_url: str, config_url: str, bundles: Sequence[str],
                    history: History, fault: int, rng: random.Random) -> int:
    """Publish forged deltas for `duration` seconds; returns how many were published."""
    link = NatsLink(NatsSettings(url=nats_url, name="sie-chaos-forger"))
    published = 0
    forged_epochs: set[tuple[str, int]] = set()
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        async with httpx.AsyncClient(timeout=5.0) as http:
            with trio.move_on_after(duration):
                while True:
                    now = await _epoch(http, config_url)
                    if now is not None and link.connected:
                        epoch, generation = now
                        batch = []
                        for bundle in bundles:
                            kind = rng.choice(KINDS)
                            published += 1
                            payload = forged_payload(kind, epoch, generation, bundle,
                                                     fault * 100_000 + published)
                            if kind == "next":
                                forged_epochs.add((generation, epoch + 1))
                            subject = rng.choice((ALL_SUBJECT, bundle_subject(bundle)))
                            batch.append((subject, payload))
                        await link.publish_confirmed(batch)
                    await trio.sleep(BURST_INTERVAL)
        nursery.cancel_scope.cancel()
    history.record("forged", fault=fault, published=published,
                   epochs=[[g, e] for g, e in sorted(forged_epochs)])
    return published


async def _epoch(http: httpx.AsyncClient, config_url: str) -> tuple[int, str] | None:
    try:
        response = await http.get(config_url + "/v1/configs/epoch")
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("epoch"), int):
        return None
    return body["epoch"], str(body.get("generation") or "")
