"""``adapter_path`` → the factory that loads it.

Keyed by the original's paths (``sie_server.adapters.<module>:<Class>``) so model configs written
for the original work unchanged. Every path here must be servable by the same code for every
model that names it; a path we cannot serve is absent, and asking for it is a terminal
``MODEL_LOAD_FAILED`` naming the ones we do serve.
"""

from __future__ import annotations

from typing import Mapping

from ..errors import ModelLoadFailed
from .base import AdapterFactory
from .sentence_transformer import SentenceTransformerAdapter

# BERT-family sentence encoders (BERT weights + tokenizer.json + pooling): the original runs them
# through sentence-transformers or its flash-attention BERT; here all go through one ONNX graph.
ADAPTERS: Mapping[str, AdapterFactory] = {
    "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter":
        SentenceTransformerAdapter.load,
    "sie_server.adapters.sentence_transformer:SentenceTransformerDenseAdapter":
        SentenceTransformerAdapter.load,
    "sie_server.adapters.bert_flash:BertFlashAdapter": SentenceTransformerAdapter.load,
}


def adapter_factory(adapter_path: str) -> AdapterFactory:
    try:
        return ADAPTERS[adapter_path]
    except KeyError:
        raise ModelLoadFailed(
            f"adapter {adapter_path!r} is not served by this worker (served: "
            + ", ".join(sorted(ADAPTERS)) + ")") from None
