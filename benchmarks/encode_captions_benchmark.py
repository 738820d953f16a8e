r"""Throughput of `xmcgan_tf.text.encoder.encode_captions` (captions per second).

Encodes synthetic scene captions ("a large red circle in the top left ...") with the offline
all-MiniLM-L6-v2 module for each T in --max_tokens and prints one Markdown table row per T,
preceded by the machine (CPU count, CPU model, load average). A warm-up batch per T is excluded
from the timing. Each row also gives the encoder's dense FLOPs per caption (2 per weight of
the transformer layers' kernels per token, plus the attention products, all T positions) and
what the machine's dense float32 matmul rate (measured in the same run) allows: the bound of
any float32 implementation that encodes every position, as `sequence_output` must.

Usage:
  python -m data_tools.build_text_encoder --output_dir artifacts/text_encoder   # once
  python -m benchmarks.encode_captions_benchmark --text_encoder_dir artifacts/text_encoder
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence

from absl import app, flags

from benchmarks import machine
from benchmarks import train_throughput_benchmark
from xmcgan_tf.text import encoder

_TEXT_ENCODER_DIR = flags.DEFINE_string(
    "text_encoder_dir", "artifacts/text_encoder", "Directory holding preprocess/ and encoder/."
)
_NUM_CAPTIONS = flags.DEFINE_integer("num_captions", 2000, "Captions to encode per T.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Captions per encoder call.")
_MAX_TOKENS = flags.DEFINE_list("max_tokens", ["17", "24"], "Values of T to measure.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the caption generator.")

_SIZES = ["small", "large", "tiny", "big", "huge"]
_COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "crimson", "turquoise", "white"]
_SHAPES = ["circle", "square", "triangle", "star", "heart", "disk", "box"]
_PLACES = [
    "in the top left",
    "in the top right",
    "in the middle",
    "near the bottom",
    "at the upper left corner",
    "on the right side",
    "in the center of the picture",
    "near the lower right corner",
]
_RELATIONS = ["left of", "right of", "above", "below", "next to"]
_TEMPLATES = [
    "a {s1} {c1} {h1} {p1}",
    "there is a {s1} {c1} {h1} {p1}",
    "a {c1} {h1} {r} a {s2} {c2} {h2}",
    "a {s1} {c1} {h1} {r} a {c2} {h2} {p2} of the image",
    "the picture shows a {c1} {h1} and a {s2} {c2} {h2} {p2}",
    "{p1} we see a {s1} {c1} {h1}, and {r} it sits a {c2} {h2}",
]


def synthetic_captions(num: int, seed: int) -> list[str]:
    """Returns `num` scene captions drawn from fixed templates with a seeded generator."""
    rng = random.Random(seed)
    captions = []
    for _ in range(num):
        words = {
            "s1": rng.choice(_SIZES),
            "s2": rng.choice(_SIZES),
            "c1": rng.choice(_COLORS),
            "c2": rng.choice(_COLORS),
            "h1": rng.choice(_SHAPES),
            "h2": rng.choice(_SHAPES),
            "p1": rng.choice(_PLACES),
            "p2": rng.choice(_PLACES),
            "r": rng.choice(_RELATIONS),
        }
        captions.append(rng.choice(_TEMPLATES).format(**words))
    return captions


def caption_flops(text_encoder: encoder.TextEncoder, max_tokens: int) -> float:
    """Dense FLOPs of encoding one caption of T positions: 2 per transformer kernel weight per
    token, plus QK^T and attention-weighted values (2·2·T·H per token and layer)."""
    kernels = [v for v in text_encoder.encoder_module.variables
               if v.name.startswith("transformer/") and len(v.shape) == 2]
    layers = {v.name.split("/")[1] for v in kernels}
    hidden = text_encoder.embedding_dim
    per_token = 2 * sum(int(v.shape[0]) * int(v.shape[1]) for v in kernels)
    per_token += len(layers) * 4 * max_tokens * hidden
    return float(per_token * max_tokens)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    captions = synthetic_captions(_NUM_CAPTIONS.value, _SEED.value)
    preprocess = os.path.join(_TEXT_ENCODER_DIR.value, "preprocess")
    encoder_dir = os.path.join(_TEXT_ENCODER_DIR.value, "encoder")
    print(f"Machine: {machine.describe()}")
    matmul = train_throughput_benchmark.matmul_flops_per_second()
    print(f"Dense float32 matmul rate: {matmul / 1e9:.0f} GFLOP/s")
    print("| T | batch | captions | seconds | captions/s | MFLOP/caption | bound, captions/s "
          "| of the bound |")
    print("|---|---|---|---|---|---|---|---|")
    for max_tokens in [int(value) for value in _MAX_TOKENS.value]:
        text_encoder = encoder.TextEncoder(preprocess, encoder_dir, max_tokens=max_tokens)
        encoder.encode_captions(
            text_encoder, captions[: _BATCH_SIZE.value], batch_size=_BATCH_SIZE.value
        )
        start = time.perf_counter()
        embeddings, _ = encoder.encode_captions(
            text_encoder, captions, batch_size=_BATCH_SIZE.value
        )
        seconds = time.perf_counter() - start
        assert embeddings.shape == (len(captions), max_tokens, text_encoder.embedding_dim)
        rate = len(captions) / seconds
        flops = caption_flops(text_encoder, max_tokens)
        print(
            f"| {max_tokens} | {_BATCH_SIZE.value} | {len(captions)} | {seconds:.2f} | "
            f"{rate:.0f} | {flops / 1e6:.0f} | {matmul / flops:.0f} | "
            f"{100 * rate * flops / matmul:.0f} % |",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
