"""Throughput of the tf.data input pipeline (examples/s) on a generated TFRecord dataset.

Writes ~1000 fake captioned images (64 px PNG, 5 captions of T = 24 tokens, D = 384) with
`tests.data.fake_records` into a temporary directory (or `--data_dir`), then times each
pipeline variant at batch 64 and prints a Markdown table and the machine it ran on.

    PYTHONPATH=. python benchmarks/input_pipeline_benchmark.py [--num_batches 40]

The figure is end-to-end host throughput: read, parse, PNG decode, resize, flip, caption
choice, sentence embedding, z, shuffle, batch. It depends on the CPU cores available; on a
shared machine compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import tensorflow as tf

from benchmarks import machine
from tests.data import fake_records
from xmcgan_tf.data import input_pipeline

_CASES = (  # variant, training
    ("single", True),
    ("single", False),
    ("two_captions", True),
    ("label_pairs", True),
)


def _time_case(data_dir: str, variant: str, training: bool, args: argparse.Namespace) -> dict:
    # Evaluation reads one pass by default; repeat enough passes for all timed batches.
    batches = 1 + args.warmup_batches + args.num_batches
    passes = -(-batches * args.batch_size // args.num_images) + 1
    dataset = input_pipeline.make_dataset(
        data_dir, "train", batch_size=args.batch_size, training=training,
        max_tokens=args.max_tokens, embedding_dim=args.embedding_dim, image_size=args.image_size,
        variant=variant, repeat=None if training else passes, seed=0)
    iterator = iter(dataset)
    start = time.perf_counter()
    next(iterator)
    first = time.perf_counter() - start
    for _ in range(args.warmup_batches):
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.num_batches):
        next(iterator)
    seconds = time.perf_counter() - start
    return {"first": first, "seconds": seconds,
            "examples_per_s": args.num_batches * args.batch_size / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=None,
                        help="existing or new dataset directory (default: a temporary one)")
    parser.add_argument("--num_images", type=int, default=1024)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_tokens", type=int, default=24)
    parser.add_argument("--embedding_dim", type=int, default=384)
    parser.add_argument("--captions_per_image", type=int, default=5)
    parser.add_argument("--num_labels", type=int, default=40)
    parser.add_argument("--num_shards", type=int, default=8)
    parser.add_argument("--warmup_batches", type=int, default=5)
    parser.add_argument("--num_batches", type=int, default=40)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or tmp
        start = time.perf_counter()
        if not tf.io.gfile.exists(os.path.join(data_dir, "dataset_info.json")):
            fake_records.write_fake_dataset(
                data_dir, num_images=args.num_images, image_size=args.image_size,
                max_tokens=args.max_tokens, embedding_dim=args.embedding_dim,
                captions_per_image=args.captions_per_image, num_labels=args.num_labels,
                splits=("train",), num_shards=args.num_shards)
        written = time.perf_counter() - start
        results = [(variant, training, _time_case(data_dir, variant, training, args))
                   for variant, training in _CASES]

    print(f"Input pipeline: {args.num_images} images, {args.image_size} px, batch "
          f"{args.batch_size}, T = {args.max_tokens}, D = {args.embedding_dim}, "
          f"{args.captions_per_image} captions/image, {args.num_shards} shards "
          f"(dataset written in {written:.1f} s); {args.num_batches} batches timed after "
          f"{args.warmup_batches} warm-up.\n")
    print("| variant | mode | examples/s | first batch (s) |")
    print("|---|---|---|---|")
    for variant, training, r in results:
        mode = "train" if training else "eval"
        print(f"| {variant} | {mode} | {r['examples_per_s']:.0f} | {r['first']:.2f} |")
    print(f"\nMachine: {machine.describe()} (at the end).")

if __name__ == "__main__":
    main()
