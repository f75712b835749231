"""Concurrent encode clients: under the nemesis, every encode is right or a defined error.

Before the workload starts (and before the baseline is read, so the checker counts it as
baseline), one MiniLM model is added and the reference vectors of a fixed set of texts are
computed in this process with the same adapter. Then each client sends a few of those texts to a
random gateway, again and again, and records one outcome per request:

    ok              200, one vector per item, each within cosine 0.9999 of its text's reference
    wrong_vector    200 with a vector that is not its text's (or the wrong number of items)
    hang            no answer within the client's timeout (the gateway's own is 30 s)
    unreachable     the connection failed (a gateway being killed or restarted)
    "<status> <code>"  any other answer: a defined error (503 queue_unavailable, 503
                    MODEL_LOADING, 202 provisioning, ...), unless its code is `internal_error`

The checker turns `wrong_vector`, `hang` and an `internal_error` into violations.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import httpx
import numpy as np
import trio
import yaml

from sie_actors.inference.loading import load_adapter

from sie_chaos.history import History

ENCODE_MODEL = "chaos/minilm"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["the cluster is healthy", "a worker was killed", "nats restarted just now",
         "how do I reset my password", "vectors must never be mixed up",
         "shipping to Berlin takes two days", "the gateway answers from its mirror",
         "a long sentence about embeddings, queues, retries and the meaning of acks"]
WRONG, HANG, UNREACHABLE, OK = "wrong_vector", "hang", "unreachable", "ok"
MIN_COSINE = 0.9999


def model_doc() -> dict:
    return {"sie_id": ENCODE_MODEL, "hf_id": MINILM, "profiles": {"default": {
        "adapter_path": "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter",
        "max_batch_tokens": 8192,
        "adapter_options": {"loadtime": {}, "runtime": {"pooling": "mean", "normalize": True}}}}}


@dataclass(frozen=True)
class EncodeSettings:
    clients: int = 2
    request_timeout: float = 40.0
    think: tuple[float, float] = (0.05, 0.3)
    max_items: int = 3


class Encoders:
    def __init__(self, gateways: list[str], history: History, settings: EncodeSettings,
                 seed: int) -> None:
        self.gateways = gateways
        self.history = history
        self.settings = settings
        self.seed = seed
        self.reference: dict[str, np.ndarray] = {}
        self.outcomes: Counter[str] = Counter()
        self.stop = trio.Event()

    async def prepare(self, config_url: str, timeout: float = 60.0) -> None:
        """Add the model (retrying while sie-config is not ready) and compute the references."""
        body = yaml.safe_dump(model_doc()).encode()
        with trio.fail_after(timeout):
            async with httpx.AsyncClient(timeout=10.0) as http:
                while True:
                    try:
                        r = await http.post(config_url + "/v1/configs/models", content=body,
                                            headers={"Content-Type": "application/x-yaml",
                                                     "Idempotency-Key": "sie-chaos-encode-model"})
                        if r.status_code in (200, 201):
                            break
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.5)
        adapter = await trio.to_thread.run_sync(load_adapter, model_doc())
        vectors = await trio.to_thread.run_sync(adapter.encode, TEXTS)
        self.reference = {t: np.asarray(v, dtype=np.float64) for t, v in zip(TEXTS, vectors)}

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for index in range(self.settings.clients):
                nursery.start_soon(self._client, index)

    async def _client(self, index: int) -> None:
        rng = random.Random(f"sie-chaos-encode:{self.seed}:{index}")
        async with httpx.AsyncClient(timeout=self.settings.request_timeout) as http:
            while not self.stop.is_set():
                gateway = rng.choice(self.gateways)
                texts = rng.sample(TEXTS, rng.randint(1, self.settings.max_items))
                outcome, status = await self._one(http, gateway, texts)
                self.outcomes[outcome] += 1
                self.history.record("encode", outcome=outcome, gateway=gateway,
                                    items=len(texts), status=status)
                with trio.move_on_after(rng.uniform(*self.settings.think)):
                    await self.stop.wait()

    async def _one(self, http: httpx.AsyncClient, gateway: str, texts: list[str]
                   ) -> tuple[str, int | None]:
        try:
            r = await http.post(f"{gateway}/v1/encode/{ENCODE_MODEL}",
                                json={"items": [{"text": t} for t in texts]})
        except httpx.TimeoutException:
            return HANG, None
        except httpx.TransportError:
            return UNREACHABLE, None
        if r.status_code != 200:
            try:
                detail = r.json().get("detail")
                code = detail.get("error") if isinstance(detail, dict) else r.json().get("status")
            except (ValueError, AttributeError):
                code = "?"
            return f"{r.status_code} {code}", r.status_code
        return (OK if self.right(texts, r.json()) else WRONG), 200

    def right(self, texts: list[str], doc: dict) -> bool:
        items = doc.get("items") or []
        if len(items) != len(texts):
            return False
        for text, item in zip(texts, items):
            values = np.asarray(((item or {}).get("dense") or {}).get("values") or [],
                                dtype=np.float64)
            ref = self.reference[text]
            if values.shape != ref.shape:
                return False
            if float(values @ ref / (np.linalg.norm(values) * np.linalg.norm(ref))) < MIN_COSINE:
                return False
        return True
