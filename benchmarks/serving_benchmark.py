"""Serving latency and throughput of the exported model on CPU.

Measures, for caption strings in and uint8 images out through the SavedModel:
- latency of one image (batch 1): p50 / p95 over --requests requests;
- throughput at batch --batch (images per second over --batches requests);
each in-process (`tf.saved_model.load` + signature call) and through the local server
(`xmcgan_tf.serving.server`) over REST and gRPC on loopback; and, to show where the time goes,
the generator alone (the `serve_embeddings` signature on ready-made caption embeddings: the
rest of the caption path is the tokenizer and the text encoder) with its profiled FLOPs per
image and the time those take at the machine's dense float32 matmul rate, the bound of any
float32 implementation. Prints a Markdown table and the machine.

    python -m benchmarks.serving_benchmark                       # demo size: 64 px, gf 64
    python -m benchmarks.serving_benchmark --gf_dim=8            # tiny generator
    python -m benchmarks.serving_benchmark --export_dir=EXPORT   # an existing export
    python -m benchmarks.serving_benchmark --dtype_policy=mixed_bfloat16  # as the recipes train

Without --export_dir, a generator with random weights of the given size is exported together
with the offline text encoder (--text_encoder_dir, built by
`python -m data_tools.build_text_encoder --output_dir artifacts/text_encoder`); random weights
cost the same time as trained ones. --dtype_policy builds that generator under a Keras dtype
policy, as a run trained with `train_config.DistributionConfig.mixed_precision` is exported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks import machine
from benchmarks import train_throughput_benchmark
from xmcgan_tf.export import export_lib
from xmcgan_tf.export import serving_module
from xmcgan_tf.networks import generator as generator_lib
from xmcgan_tf.serving import client
from xmcgan_tf.serving import server as server_lib
from xmcgan_tf.text import encoder as encoder_lib

CAPTIONS = [
    "a small red circle above a blue square",
    "a large green star in the top left",
    "there is a big crimson disk near the upper left corner",
    "a yellow triangle to the left of a small purple heart",
]


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _latency_ms(call: Callable[[list[str]], np.ndarray], requests: int) -> list[float]:
    times = []
    for i in range(requests):
        start = time.perf_counter()
        images = call([CAPTIONS[i % len(CAPTIONS)]])
        times.append((time.perf_counter() - start) * 1000.0)
        assert images.shape[0] == 1
    return times


def _throughput(call: Callable[[list[str]], np.ndarray], batch: int, batches: int) -> float:
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch)]
    start = time.perf_counter()
    for _ in range(batches):
        assert call(captions).shape[0] == batch
    return batch * batches / (time.perf_counter() - start)


def _measure(name: str, call, args) -> dict:
    for _ in range(args.warmup):
        call(CAPTIONS[:1])
        call([CAPTIONS[0]] * args.batch)
    times = _latency_ms(call, args.requests)
    return {"path": name, "p50": _percentile(times, 50), "p95": _percentile(times, 95),
            "mean": statistics.fmean(times),
            "throughput": _throughput(call, args.batch, args.batches)}


def _export(args, export_dir: str) -> str:
    preprocess = os.path.join(args.text_encoder_dir, "preprocess")
    encoder = os.path.join(args.text_encoder_dir, "encoder")
    text_encoder = encoder_lib.TextEncoder(preprocess, encoder, max_tokens=args.max_tokens)
    generator = generator_lib.Generator(image_size=args.image_size, gf_dim=args.gf_dim,
                                        z_dim=args.z_dim, embedding_dim=text_encoder.embedding_dim,
                                        dtype=args.dtype_policy)
    module = serving_module.ServingModule(generator, text_encoder, max_tokens=args.max_tokens,
                                          embedding_dim=text_encoder.embedding_dim)
    start = time.perf_counter()
    _, path = export_lib.write_version(module, export_dir)
    print(f"exported {path} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return export_dir


def _generator_gflop(args, *, max_tokens: int, embedding_dim: int) -> float:
    """Profiled forward FLOPs (G) of one image of a generator of the benchmark's size."""
    generator = generator_lib.Generator(image_size=args.image_size, gf_dim=args.gf_dim,
                                        z_dim=args.z_dim, embedding_dim=embedding_dim,
                                        dtype=args.dtype_policy)
    inputs = generator.example_inputs(max_tokens)
    forward = tf.function(lambda *a: generator(*a, training=False))
    forward(*inputs)
    return train_throughput_benchmark.graph_flops(forward.get_concrete_function(*inputs)) / 1e9


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export_dir", default=None, help="existing export (newest version)")
    parser.add_argument("--text_encoder_dir", default="artifacts/text_encoder")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--gf_dim", type=int, default=64)
    parser.add_argument("--z_dim", type=int, default=128)
    parser.add_argument("--max_tokens", type=int, default=24)
    parser.add_argument("--dtype_policy", default=None,
                        help="Keras dtype policy of the exported generator, e.g. mixed_bfloat16 "
                             "(default: float32)")
    parser.add_argument("--requests", type=int, default=50, help="batch-1 requests for latency")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=10, help="batches for throughput")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    load_before = machine.load_average()

    with tempfile.TemporaryDirectory() as scratch:
        if args.export_dir is None:
            if not os.path.isdir(os.path.join(args.text_encoder_dir, "encoder")):
                parser.error(f"no text encoder in {args.text_encoder_dir}; build it with "
                             f"`python -m data_tools.build_text_encoder --output_dir "
                             f"{args.text_encoder_dir}` or pass --export_dir")
            export_dir = _export(args, os.path.join(scratch, "export"))
        else:
            export_dir = args.export_dir
        loaded = serving_module.load(export_dir)
        info = export_lib.read_export_info(loaded.path)
        default = loaded.model.signatures[serving_module.SERVING_DEFAULT]

        def in_process(captions):
            return default(captions=tf.constant(captions))[serving_module.IMAGES].numpy()

        results = [_measure("in-process SavedModel", in_process, args)]
        embeddings = loaded.model.signatures[serving_module.SERVE_EMBEDDINGS]
        max_tokens, dim = int(info["max_tokens"]), int(info["embedding_dim"])

        def generator_only(captions):
            words = tf.random.stateless_normal([len(captions), max_tokens, dim], seed=[0, 0])
            return embeddings(words=words, word_mask=tf.ones([len(captions), max_tokens]))[
                serving_module.IMAGES].numpy()

        results.append(_measure("in-process, generator only (serve_embeddings)",
                                generator_only, args))
        generator_gflop = (None if args.export_dir else
                           _generator_gflop(args, max_tokens=max_tokens, embedding_dim=dim))
        matmul_gflops = train_throughput_benchmark.matmul_flops_per_second() / 1e9
        compute_dtype = tf.dtypes.as_dtype(
            keras.mixed_precision.Policy(args.dtype_policy or "float32").compute_dtype)
        compute_gflops = (matmul_gflops if compute_dtype == tf.float32 else
                          train_throughput_benchmark.matmul_flops_per_second(
                              dtype=compute_dtype) / 1e9)
        with server_lib.ModelServer(export_dir, grpc_port=0, rest_port=0, poll_seconds=0,
                                    max_batch=max(64, args.batch)) as server:
            for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
                def remote(captions, protocol=protocol, port=port):
                    return client.predict(f"127.0.0.1:{port}", captions, protocol=protocol)
                results.append(_measure(f"server, {protocol.upper()} (loopback)", remote, args))

    source = args.export_dir or "a fresh export with random weights"
    generator = ("as exported" if args.export_dir else
                 f"gf={args.gf_dim}, z_dim={args.z_dim}, {args.dtype_policy or 'float32'}")
    print(f"\nModel: version {loaded.version} of {source} ({info.get('image_size', '?')} px; "
          f"generator {generator}; T={info.get('max_tokens', '?')}, "
          f"D={info.get('embedding_dim', '?')}); caption strings in, uint8 images out.\n")
    print(f"| path | p50 latency, 1 image (ms) | p95 (ms) | "
          f"throughput, batch {args.batch} (img/s) |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['path']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['throughput']:.1f} |")
    print(f"\n{args.requests} batch-1 requests, {args.batches} batches of {args.batch}, "
          f"{args.warmup} warm-up rounds per path.")
    if generator_gflop is not None:
        print(f"Generator forward: {generator_gflop:.2f} GFLOP per image (TF profiler, batch 1); "
              f"at the machine's dense float32 matmul rate ({matmul_gflops:.0f} GFLOP/s) that "
              f"is {1000 * generator_gflop / matmul_gflops:.0f} ms per image, the float32 "
              "bound.")
        if compute_dtype != tf.float32:
            print(f"At the {compute_dtype.name} matmul rate ({compute_gflops:.0f} GFLOP/s, the "
                  f"generator's compute dtype) it is {1000 * generator_gflop / compute_gflops:.0f} "
                  f"ms, the bound in {compute_dtype.name}.")
    print(f"Machine: {machine.describe()} (after); load average {load_before} before.")


if __name__ == "__main__":
    main()
