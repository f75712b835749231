"""BERT sentence encoders on onnxruntime (CPU): the ``SentenceTransformer`` adapter family.

Tokenising is the ``tokenizers`` library reading the model's ``tokenizer.json``; the encoder is
the graph ``bert_graph`` builds from ``model.safetensors``; pooling and normalisation follow the
profile's runtime options, falling back to the folder's sentence-transformers files. This
reproduces ``SentenceTransformer.encode`` for BERT models without torch (see docs/inference.md
for the measurements behind the choice).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ModelLoadFailed
from .base import EncodeOptions, LoadSpec
from . import bert_graph
from .bert_graph import BertShape, UnsupportedModel, build_bert_graph
from .graph_cache import GraphCache, graph_key
from .pooling import POOLINGS, l2_normalize, pool
from .st_files import read_defaults

# Texts are sorted by length and run in chunks of at most this many, so one long text does not
# pad a whole large batch (sentence-transformers does the same, with its batch_size).
FORWARD_CHUNK = 64
log = logging.getLogger("sie_actors.inference.sentence_transformer")
REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors")
SUPPORTED_MODEL_TYPES = ("bert",)


def _fail(spec: LoadSpec, folder: Path, why: str) -> ModelLoadFailed:
    return ModelLoadFailed(f"cannot load {spec.model_id!r} from {str(folder)!r}: {why}")


def _cached_session(spec: LoadSpec, folder: Path, shape: BertShape,
                    build: Callable[[], bytes], session_of: Callable[[bytes], Any]) -> Any:
    """The model's onnxruntime session, from the graph cache when it has the graph (see
    `graph_cache`); a graph built here is kept there for the next load."""
    if spec.graph_cache is None:
        return session_of(build())
    cache = GraphCache(spec.graph_cache)
    try:
        key = graph_key(Path(bert_graph.__file__), shape,
                        [folder / "model.safetensors", folder / "config.json"])
    except OSError:
        return session_of(build())
    kept = cache.get(key)
    if kept is not None:
        try:
            return session_of(kept)
        except Exception as exc:  # a damaged entry: build it again
            log.warning("graph cache: the entry for %s is unusable (%s); building the graph",
                        spec.model_id, exc)
            cache.forget(key)
    graph = build()
    session = session_of(graph)
    cache.put(key, graph)
    return session


def _apply_template(template: str, text: str, instruction: str) -> str:
    # str.replace, not str.format: user text may contain braces.
    return template.replace("{instruction}", instruction).replace("{text}", text)


class SentenceTransformerAdapter:
    """A loaded BERT sentence encoder; ``encode`` is thread-safe (onnxruntime sessions are)."""

    def __init__(self, *, model_id: str, tokenizer: Any, session: Any, dims: int,
                 max_length: int, pad_id: int, pooling: str, normalize: bool,
                 loadtime: Mapping[str, Any], runtime: Mapping[str, Any]) -> None:
        self.model_id = model_id
        self._tokenizer = tokenizer
        self._session = session
        self._dims = dims
        self.max_length = max_length
        self._pad_id = pad_id
        self.pooling = pooling
        self.normalize = normalize
        self._loadtime = dict(loadtime)
        self._runtime = dict(runtime)

    @property
    def dims(self) -> int:
        return self._dims

    @classmethod
    def load(cls, spec: LoadSpec, weights_dir: Path) -> "SentenceTransformerAdapter":
        folder = Path(weights_dir)
        missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise _fail(spec, folder, "missing " + ", ".join(missing))
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _fail(spec, folder, f"config.json is unreadable: {exc}") from None
        model_type = config.get("model_type") if isinstance(config, dict) else None
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise _fail(spec, folder, f"model_type {model_type!r} is not served by this adapter "
                        f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
        defaults = read_defaults(folder)
        pooling = str(spec.runtime.get("pooling") or defaults.pooling or "mean")
        if pooling not in POOLINGS:
            raise _fail(spec, folder, f"pooling {pooling!r} is not supported "
                        f"(supported: {', '.join(POOLINGS)})")
        normalize = spec.runtime.get("normalize")
        if normalize is None:
            normalize = bool(defaults.normalize)
        positions = int(config.get("max_position_embeddings", 512))
        max_length = min(spec.max_sequence_length or defaults.max_seq_length or positions, positions)
        try:
            import onnxruntime as ort
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            shape = BertShape.from_config(config)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.inter_op_num_threads = 1
            # No busy-waiting between ops: the worker shares its cores with its own event loop,
            # NATS and often a gateway; measured on 2 shared cores, spinning threads did ~35%
            # less work per CPU-second (docs/inference.md).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            if spec.threads:
                options.intra_op_num_threads = spec.threads

            def session_of(graph: bytes):
                return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

            def build() -> bytes:
                weights = load_file(str(folder / "model.safetensors"))
                return build_bert_graph(weights, shape).SerializeToString()

            session = _cached_session(spec, folder, shape, build, session_of)
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except UnsupportedModel as exc:
            raise _fail(spec, folder, str(exc)) from None
        except ImportError as exc:
            raise _fail(spec, folder, f"inference runtime not installed: {exc}") from None
        except Exception as exc:  # onnxruntime/safetensors/tokenizers raise their own types
            raise _fail(spec, folder, f"{type(exc).__name__}: {exc}") from None
        # tokenizer.json often carries fixed padding (e.g. to 128) and its own truncation: we pad
        # each chunk to its longest text ourselves and truncate at the model's max length.
        pad = tokenizer.padding or {}
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length)
        return cls(model_id=spec.model_id, tokenizer=tokenizer, session=session,
                   dims=shape.hidden_size, max_length=max_length,
                   pad_id=int(pad.get("pad_id", config.get("pad_token_id") or 0)),
                   pooling=pooling, normalize=bool(normalize),
                   loadtime=spec.loadtime, runtime=spec.runtime)

    def prepare(self, texts: Sequence[str], options: EncodeOptions) -> list[str]:
        """Apply the query/doc template or prefix the profile defines, if any."""
        side = "query" if options.is_query else "doc"
        template = self._runtime.get(f"{side}_template")
        prefix = self._loadtime.get(f"{side}_prefix")
        instruction = options.instruction or self._runtime.get("default_instruction") or ""
        if isinstance(template, str) and template:
            return [_apply_template(template, t, str(instruction)) for t in texts]
        if isinstance(prefix, str) and prefix:
            return [prefix + t for t in texts]
        return list(texts)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], options: EncodeOptions = EncodeOptions()) -> np.ndarray:
        pooling = options.pooling or self.pooling
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} (supported: {', '.join(POOLINGS)})")
        normalize = self.normalize if options.normalize is None else options.normalize
        out = np.empty((len(texts), self._dims), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._tokenizer.encode_batch(self.prepare(texts, options))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), FORWARD_CHUNK):
            chunk = order[start:start + FORWARD_CHUNK]
            width = max(len(ids[i]) for i in chunk)
            input_ids = np.full((len(chunk), width), self._pad_id, dtype=np.int32)
            mask = np.zeros((len(chunk), width), dtype=np.int32)
            for row, i in enumerate(chunk):
                input_ids[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            hidden = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
            vectors = pool(hidden, mask, pooling)
            if normalize:
                vectors = l2_normalize(vectors)
            out[chunk] = vectors
        return out
