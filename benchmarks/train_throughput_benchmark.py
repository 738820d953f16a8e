r"""Training throughput of XMC-GAN at 64 px: images/s (graph vs XLA) and the fraction of the
machine's dense matmul FLOP/s that one training step achieves.

    python -m benchmarks.train_throughput_benchmark [--gf_dims 16,32] [--batch_size 16] \
        [--d_steps_per_g_step 1] [--steps 10] [--modes graph,xla,bf16,xla_bf16] \
        [--output results.json]

What is measured, all in one process:
- the machine's dense float32 matmul rate: an n×n @ n×n `tf.matmul` in a `tf.function`
  (2n³ FLOPs per product), best of several repeats;
- FLOPs per training step, two ways with TensorFlow's profiler (`float_operation`):
  `flops_per_step` = the step's executed work from forward counts, F(net, n) = profiled
  forward FLOPs of a network on n examples in training mode, a backward pass = 2 forwards
  (1 when only input gradients are needed), for B = batch and b = B / d_steps_per_g_step:
    D-only update:  F(G, b) + 3 F(D, 2b)                         (no gradient into G)
    joint update:   3 F(G, b) + 4 F(D, 2b)   (L_D: D fwd + bwd; L_G: back through D's inputs
                                              and G's weights)
  and `graph_flops_per_step` = the profiler's count over the whole traced step graph, an upper
  bound: it also counts gradient ops that grappler prunes before running (e.g. the filter
  gradients of the L_G pass through D);
- images/s: steps/s × global batch of one `XMCGAN.train_step` (a D-only update on one half,
  a joint D + G update on the other, EMA), on in-memory random data so the input pipeline does
  not count, after warm-up steps (tracing/compilation excluded and reported separately).

Utilisation = FLOPs per step × steps/s ÷ matmul FLOP/s (float32 FLOPs and the float32 matmul
rate also for the bf16 modes: their figure says how much faster than float32 the step runs).
Networks: the 64 px tables of SPEC §2 with widths gf = df for each of `--gf_dims` (16: the CPU
recipe and the demo; 32; the paper's width at 128 px is 96), D = 384 (the offline MiniLM text
encoder), T = 24, z 128. Modes: graph (tf.function), xla (jit_compile), bf16 and xla_bf16
(the `mixed_bfloat16` policy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import machine
from xmcgan_tf.models import xmcgan
from xmcgan_tf.networks import discriminator as discriminator_lib
from xmcgan_tf.networks import generator as generator_lib


def matmul_flops_per_second(n: int = 2048, repeats: int = 5, products: int = 4,
                            dtype: tf.DType = tf.float32) -> float:
    """Best-of-`repeats` dense matmul rate (FLOP/s) of an n×n @ n×n product in `dtype`."""
    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)

    @tf.function
    def chain(x):
        for _ in range(products):
            x = tf.matmul(x, b) * 1e-3  # keeps values finite; 1 extra elementwise op
        return x

    chain(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        chain(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 * products / best


def graph_flops(concrete_function) -> int:
    """Float operations of a traced function's graph, by TF's profiler.

    Counts the ops of the function's own graph (all convolutions, matmuls and their gradients
    here); ops inside nested function bodies (the spectral-norm power iteration's `cond`
    branches: a few vector-matrix products per layer) are not counted.
    """
    options = (tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output().build())
    return int(tf.compat.v1.profiler.profile(graph=concrete_function.graph,
                                             options=options).total_float_ops)


def step_flops(model: xmcgan.XMCGAN, batch: dict) -> int:
    """Executed FLOPs of one `train_step` from profiled forward counts (see module doc)."""
    half = xmcgan.split_batch(batch, model.d_steps_per_g_step)[0]
    branch = xmcgan.single_branch(half)[0]

    def generate():
        return model.generator(branch.z, branch.sentence, branch.words, branch.word_mask,
                               training=True)

    images = tf.concat([branch.image, branch.image], axis=0)
    sentences = tf.concat([branch.sentence, branch.sentence], axis=0)
    g_forward = graph_flops(tf.function(generate).get_concrete_function())
    d_forward = graph_flops(tf.function(
        lambda: model.discriminator(images, sentences, training=True)).get_concrete_function())
    d_only = g_forward + 3 * d_forward
    joint = 3 * g_forward + 4 * d_forward
    return (model.d_steps_per_g_step - 1) * d_only + joint


def make_model(gf_dim: int, embedding_dim: int, max_tokens: int,
               d_steps_per_g_step: int = 2) -> xmcgan.XMCGAN:
    keras.utils.set_random_seed(0)
    model = xmcgan.XMCGAN(
        generator_lib.Generator(image_size=64, gf_dim=gf_dim, z_dim=128,
                                embedding_dim=embedding_dim),
        discriminator_lib.Discriminator(image_size=64, df_dim=gf_dim,
                                        embedding_dim=embedding_dim),
        max_tokens=max_tokens, d_steps_per_g_step=d_steps_per_g_step)
    model.compile(d_optimizer=keras.optimizers.Adam(4e-4, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5))
    return model


def random_batch(batch_size: int, embedding_dim: int, max_tokens: int) -> dict:
    rng = np.random.default_rng(0)
    num_words = rng.integers(3, max_tokens + 1, size=batch_size)
    return {
        "image": tf.constant(rng.uniform(size=[batch_size, 64, 64, 3]), tf.float32),
        "z": tf.constant(rng.normal(size=[batch_size, 128]), tf.float32),
        "sentence": tf.constant(rng.normal(size=[batch_size, embedding_dim]), tf.float32),
        "words": tf.constant(rng.normal(size=[batch_size, max_tokens, embedding_dim]),
                             tf.float32),
        "word_mask": tf.constant(np.arange(max_tokens)[None] < num_words[:, None], tf.float32),
    }


def benchmark_mode(mode: str, *, gf_dim: int, batch_size: int, steps: int, warmup: int,
                   embedding_dim: int, max_tokens: int, d_steps_per_g_step: int = 2) -> dict:
    """Times `steps` training steps after `warmup` in mode graph, xla, bf16 or xla_bf16."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if "bf16" in mode else "float32")
    try:
        model = make_model(gf_dim, embedding_dim, max_tokens, d_steps_per_g_step)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    batch = random_batch(batch_size, embedding_dim, max_tokens)
    step = tf.function(model.train_step, jit_compile=mode.startswith("xla"))
    start = time.perf_counter()
    step(batch)["loss/g_total"].numpy()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        step(batch)["loss/g_total"].numpy()
    start = time.perf_counter()
    for _ in range(steps):
        results = step(batch)
    results["loss/g_total"].numpy()
    seconds = (time.perf_counter() - start) / steps
    flops = step_flops(model, batch)
    graph_count = graph_flops(tf.function(model.train_step).get_concrete_function(batch))
    return {"mode": mode, "gf_dim": gf_dim, "first_step_s": first, "s_per_step": seconds,
            "images_per_s": batch_size / seconds, "flops_per_step": flops,
            "graph_flops_per_step": graph_count, "model_flops_per_s": flops / seconds,
            "g_params": model.generator.count_params(),
            "d_params": model.discriminator.count_params()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gf_dims", default="16,32", help="comma list of widths gf = df")
    parser.add_argument("--batch_size", type=int, default=16, help="global batch per step")
    parser.add_argument("--d_steps_per_g_step", type=int, default=1,
                        help="updates per step (1: the CPU recipe; 2: the paper)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (incl. tracing)")
    parser.add_argument("--modes", default="graph,xla,bf16,xla_bf16",
                        help="comma list of graph, xla, bf16, xla_bf16")
    parser.add_argument("--embedding_dim", type=int, default=384, help="text dimension D")
    parser.add_argument("--max_tokens", type=int, default=24, help="tokens per caption T")
    parser.add_argument("--matmul_n", type=int, default=2048, help="matmul size n")
    parser.add_argument("--intra_op_threads", type=int, default=0,
                        help="threads inside one op (0: TensorFlow's default, all cores)")
    parser.add_argument("--inter_op_threads", type=int, default=0,
                        help="ops run side by side (0: TensorFlow's default)")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    # Thread pools are fixed when TensorFlow first runs an op: set them before anything runs.
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    # The matmul rate is measured before and after the model (the best counts), so that a
    # machine shared with other work is not under-rated; the load average is reported.
    peak_before = matmul_flops_per_second(args.matmul_n)
    rows = [benchmark_mode(mode, gf_dim=int(gf_dim), batch_size=args.batch_size,
                           steps=args.steps, warmup=args.warmup,
                           embedding_dim=args.embedding_dim, max_tokens=args.max_tokens,
                           d_steps_per_g_step=args.d_steps_per_g_step)
            for gf_dim in args.gf_dims.split(",") for mode in args.modes.split(",")]
    peak = max(peak_before, matmul_flops_per_second(args.matmul_n))
    results = {"machine": {"description": machine.describe(), "platform": platform.platform(),
                           "cpus": os.cpu_count(),
                           "tensorflow": tf.__version__, "load_average": os.getloadavg(),
                           "matmul_flops_per_s": peak, "matmul_n": args.matmul_n},
               "config": vars(args), "modes": rows}
    print(f"Machine: {machine.describe()}")
    print(f"threads: intra-op {args.intra_op_threads or 'default'}, inter-op "
          f"{args.inter_op_threads or 'default'}")
    print(f"dense matmul ({args.matmul_n}²): {peak / 1e9:.1f} GFLOP/s")
    for row in rows:
        row["utilisation"] = row["model_flops_per_s"] / peak
        mode = f"gf {row['gf_dim']} {row['mode']}"
        print(f"{mode:14s}: first step {row['first_step_s']:.1f} s, {row['s_per_step']:.3f} "
              f"s/step, {row['images_per_s']:.1f} images/s, "
              f"{row['flops_per_step'] / 1e9:.1f} GFLOP/step (graph count "
              f"{row['graph_flops_per_step'] / 1e9:.1f}), "
              f"{row['model_flops_per_s'] / 1e9:.2f} GFLOP/s = "
              f"{100 * row['utilisation']:.1f} % of matmul peak "
              f"(G {row['g_params']:,} / D {row['d_params']:,} params)")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
