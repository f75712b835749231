"""`python -m sie_bench.adapter_compare`: our MiniLM adapter beside sentence-transformers on torch.

torch must never be a project dependency, so the torch side runs in a separate interpreter the
user provides (``--torch-python``, a scratch venv with torch + sentence-transformers). The two
are run alternately, one measurement each per round and with the same thread count, batch and
sentences, so a machine shared with other work disturbs both about equally; the report gives the
median of each and the ratio of medians, plus sentences per CPU-second (the process's own CPU
time), which is much less sensitive to other load on the machine.

Sentences are generated deterministically (short, ~12-16 word pieces), as in an embedding API's
typical "batch of 32 short texts" request.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

SUBJECTS = ["A man", "The woman", "A child", "Two dogs", "The old teacher", "A small cat",
            "The company", "My neighbour", "A group of students", "The pilot"]
VERBS = ["is eating", "reads", "plays with", "is looking at", "bought", "is cleaning",
         "talks about", "repairs", "draws", "carries"]
OBJECTS = ["a red apple in the kitchen.", "the new car outside.", "an old book about history.",
           "a guitar on the stage.", "the broken window.", "some fresh bread.",
           "a long letter to a friend.", "the map of the city.", "a bicycle near the river.",
           "the evening news on television."]


def sentences(n: int = 256, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}" for _ in range(n)]


def measure(encode: Callable[[list[str]], object], texts: Sequence[str], batch: int,
            rounds: int = 2) -> dict[str, float]:
    encode(list(texts[:batch]))                       # warm-up (allocations, thread pools)
    wall0, cpu0, n = time.perf_counter(), time.process_time(), 0
    for _ in range(rounds):
        for i in range(0, len(texts), batch):
            chunk = list(texts[i:i + batch])
            encode(chunk)
            n += len(chunk)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"per_s": n / wall, "per_cpu_s": n / cpu if cpu else float("nan")}


TORCH_SIDE = r"""
import json, sys, time
import torch
threads, batch, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
from sentence_transformers import SentenceTransformer
sys.path.insert(0, sys.argv[4])
from adapter_compare import measure, sentences
model = SentenceTransformer(folder, device="cpu")
texts = sentences()
print(json.dumps(measure(lambda t: model.encode(t, batch_size=batch, normalize_embeddings=True),
                         texts, batch)))
"""

OURS_SIDE = r"""
import json, sys
from sie_actors.inference.adapters.base import EncodeOptions, LoadSpec
from sie_actors.inference.adapters.sentence_transformer import SentenceTransformerAdapter
from sie_bench.adapter_compare import measure, sentences
threads, batch, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
adapter = SentenceTransformerAdapter.load(
    LoadSpec(model_id="bench", runtime={"pooling": "mean", "normalize": True}, threads=threads),
    folder)
print(json.dumps(measure(lambda t: adapter.encode(t, EncodeOptions()), sentences(), batch)))
"""


def run_side(python: str, code: str, threads: int, batch: int, folder: Path) -> dict[str, float]:
    """Each measurement in a fresh process, so neither side inherits the other's thread pools."""
    here = str(Path(__file__).resolve().parent)
    proc = subprocess.run([python, "-c", code, str(threads), str(batch), str(folder), here],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{python} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch-python", help="python of a scratch venv with torch and "
                        "sentence-transformers (omit to measure only our adapter)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write every sample to FILE")
    args = parser.parse_args(argv)
    from sie_actors.inference.weights import resolve_weights
    folder = resolve_weights({"hf_id": "sentence-transformers/all-MiniLM-L6-v2"}).path
    samples: dict[str, list[dict[str, float]]] = {}
    for rep in range(args.repeats):
        for threads in args.threads:
            for batch in args.batch:
                key = f"{threads}/{batch}"
                samples.setdefault("ours " + key, []).append(
                    run_side(sys.executable, OURS_SIDE, threads, batch, folder))
                if args.torch_python:
                    samples.setdefault("torch " + key, []).append(
                        run_side(args.torch_python, TORCH_SIDE, threads, batch, folder))
    print(f"{'threads/batch':>13} {'ours/s':>8} {'ours/cpu-s':>10} {'torch/s':>8} "
          f"{'torch/cpu-s':>11} {'ratio':>6} {'ratio cpu':>9}")
    for threads in args.threads:
        for batch in args.batch:
            key = f"{threads}/{batch}"
            ours = samples["ours " + key]
            row = [statistics.median(s["per_s"] for s in ours),
                   statistics.median(s["per_cpu_s"] for s in ours)]
            line = f"{key:>13} {row[0]:8.1f} {row[1]:10.1f}"
            if args.torch_python:
                torch_s = samples["torch " + key]
                t = [statistics.median(s["per_s"] for s in torch_s),
                     statistics.median(s["per_cpu_s"] for s in torch_s)]
                line += f" {t[0]:8.1f} {t[1]:11.1f} {row[0] / t[0]:6.2f} {row[1] / t[1]:9.2f}"
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
