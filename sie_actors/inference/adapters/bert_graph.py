"""Build an ONNX graph of a BERT encoder straight from its safetensors weights.

No package ships an ONNX export of the models we serve, and exporting one needs torch, which the
project must not depend on. A BERT encoder is a short, fixed recipe (embeddings, N identical
layers of attention + feed-forward, post-LayerNorm), so writing the graph here with the `onnx`
helper API is a few dozen lines, and it lets us emit onnxruntime's fused CPU kernels
(``com.microsoft`` EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu)
directly instead of hoping its pattern matcher recognises a hand-written subgraph. The result is
an in-memory ``ModelProto``; nothing is written to disk.

Weight names follow Hugging Face's ``BertModel`` state dict (``embeddings.*``,
``encoder.layer.{i}.*``), optionally under a ``bert.`` prefix. Outputs the last hidden state
``[batch, seq, hidden]``; pooling happens outside so the profile can choose mean or CLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

MS_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class BertShape:
    """The hyper-parameters the graph needs, read from the model's ``config.json``."""

    hidden_size: int
    num_heads: int
    num_layers: int
    layer_norm_eps: float
    hidden_act: str = "gelu"

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> "BertShape":
        return cls(hidden_size=int(config["hidden_size"]),
                   num_heads=int(config["num_attention_heads"]),
                   num_layers=int(config["num_hidden_layers"]),
                   layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
                   hidden_act=str(config.get("hidden_act", "gelu")))


class UnsupportedModel(ValueError):
    """The weights or config describe something this graph builder does not reproduce."""


def _strip_prefix(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if "embeddings.word_embeddings.weight" in weights:
        return dict(weights)
    if "bert.embeddings.word_embeddings.weight" in weights:
        return {k[len("bert."):]: v for k, v in weights.items() if k.startswith("bert.")}
    raise UnsupportedModel("no BERT embeddings in the weights "
                           "(expected embeddings.word_embeddings.weight)")


def build_bert_graph(weights: Mapping[str, np.ndarray], shape: BertShape):
    """Return an ONNX ``ModelProto``: inputs ``input_ids``, ``attention_mask`` (int32
    ``[batch, seq]``); output ``last_hidden_state`` (float32 ``[batch, seq, hidden]``).

    Padding must be on the right (each mask row ones, then zeros): EmbedLayerNormalization
    reduces the mask to per-row lengths, which is what the fused Attention kernel reads."""
    from onnx import TensorProto, helper, numpy_helper

    if shape.hidden_act not in ("gelu", "gelu_python"):
        raise UnsupportedModel(f"hidden_act {shape.hidden_act!r} is not supported (only exact gelu)")
    if shape.hidden_size % shape.num_heads:
        raise UnsupportedModel("hidden_size is not a multiple of num_attention_heads")
    w = _strip_prefix(weights)
    inits: list = []
    nodes: list = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def get(name: str) -> np.ndarray:
        try:
            return w[name]
        except KeyError:
            raise UnsupportedModel(f"weight {name!r} is missing") from None

    token_types = get("embeddings.token_type_embeddings.weight")
    inits.append(numpy_helper.from_array(np.zeros(1, dtype=np.int32), "zero_i32"))
    nodes.append(helper.make_node("Mul", ["input_ids", "zero_i32"], ["segment_ids"]))
    nodes.append(helper.make_node(
        "EmbedLayerNormalization",
        ["input_ids", "segment_ids",
         const("word_emb", get("embeddings.word_embeddings.weight")),
         const("pos_emb", get("embeddings.position_embeddings.weight")),
         const("seg_emb", token_types),
         const("emb_ln_g", get("embeddings.LayerNorm.weight")),
         const("emb_ln_b", get("embeddings.LayerNorm.bias")),
         "attention_mask"],
        ["h0", "mask_index"], domain=MS_DOMAIN, epsilon=shape.layer_norm_eps))

    hidden = "h0"
    for i in range(shape.num_layers):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate([get(p + f"attention.self.{n}.weight").T
                                for n in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([get(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
        nodes.append(helper.make_node(
            "Attention", [hidden, const(f"l{i}_qkv_w", qkv_w), const(f"l{i}_qkv_b", qkv_b), "mask_index"],
            [f"l{i}_ctx"], domain=MS_DOMAIN, num_heads=shape.num_heads))
        nodes.append(helper.make_node(
            "MatMul", [f"l{i}_ctx", const(f"l{i}_ao_w", get(p + "attention.output.dense.weight").T)],
            [f"l{i}_ao"]))
        nodes.append(helper.make_node(
            "SkipLayerNormalization",
            [f"l{i}_ao", hidden, const(f"l{i}_ln1_g", get(p + "attention.output.LayerNorm.weight")),
             const(f"l{i}_ln1_b", get(p + "attention.output.LayerNorm.bias")),
             const(f"l{i}_ao_b", get(p + "attention.output.dense.bias"))],
            [f"l{i}_attn"], domain=MS_DOMAIN, epsilon=shape.layer_norm_eps))
        nodes.append(helper.make_node(
            "MatMul", [f"l{i}_attn", const(f"l{i}_in_w", get(p + "intermediate.dense.weight").T)],
            [f"l{i}_in"]))
        nodes.append(helper.make_node(
            "BiasGelu", [f"l{i}_in", const(f"l{i}_in_b", get(p + "intermediate.dense.bias"))],
            [f"l{i}_act"], domain=MS_DOMAIN))
        nodes.append(helper.make_node(
            "MatMul", [f"l{i}_act", const(f"l{i}_out_w", get(p + "output.dense.weight").T)],
            [f"l{i}_out"]))
        out_name = "last_hidden_state" if i == shape.num_layers - 1 else f"h{i + 1}"
        nodes.append(helper.make_node(
            "SkipLayerNormalization",
            [f"l{i}_out", f"l{i}_attn", const(f"l{i}_ln2_g", get(p + "output.LayerNorm.weight")),
             const(f"l{i}_ln2_b", get(p + "output.LayerNorm.bias")),
             const(f"l{i}_out_b", get(p + "output.dense.bias"))],
            [out_name], domain=MS_DOMAIN, epsilon=shape.layer_norm_eps))
        hidden = out_name

    graph = helper.make_graph(
        nodes, "bert_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "seq"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       ["batch", "seq", shape.hidden_size])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid(MS_DOMAIN, 1)],
                             producer_name="sie-actors")
