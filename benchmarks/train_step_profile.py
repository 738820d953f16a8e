r"""Where a training step's time goes: TensorFlow's profiler, op time by kind and by part.

    PYTHONPATH=. .venv/bin/python -m benchmarks.train_step_profile --gf_dim 16 --steps 5

Traces `--steps` steps of XMC-GAN at 64 px (the CPU recipe's schedule: one joint update of
`--batch_size` per step, D = 384, T = 24, random weights and data; after 3 warm-up steps) with
`tf.profiler.experimental`, reads the trace (the XSpace protobuf the profiler writes) and sums
the executed TensorFlow ops' self time on the host threads:

- by op type (Conv2D, Conv2DBackpropInput/Filter, MatMul, FusedBatchNorm*, the optimizer's
  ResourceApplyAdam, ...), the top `--top` types;
- by part of the step, from the op's name scope: generator, discriminator (forward and
  gradient), the optimizer updates, the EMA update, and the ops at the step's top level (the
  loss terms and their gradients).

Op times overlap when both cores run ops at once, so the shares are of the summed op time,
and the wall time per step is printed beside it.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import tempfile
import time

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from benchmarks import machine
from benchmarks import train_throughput_benchmark

# Trace events that hold other ops' events (the executor's bookkeeping), not op work.
CONTAINERS = frozenset({"Process", "PartitionedCall", "StatefulPartitionedCall", "While", "If",
                        "StatelessIf", "StatelessWhile"})
# Parts of the step, by the first matching fragment of an op's full name (checked in order).
PARTS = (("optimizer (Adam)", ("adam", "resourceapply", "assignaddvariable")),
         ("EMA update", ("ema",)),
         ("spectral norm (power iteration)", ("spectral",)),
         ("losses (hinge, contrastive, word-region)", ("loss", "contrastive", "hinge")),
         ("generator", ("generator",)),
         ("discriminator", ("discriminator",)))


def op_times(xplane_path: str) -> list[tuple[str, str, float]]:
    """(op name, op type, self time in ms) of every TensorFlow op event on the host plane."""
    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if "tf_Compute" not in line.name and "TensorFlow Ops" not in line.name \
                    and "tf_" not in line.name:
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name:
                    continue
                op_name, op_type = name.rsplit(":", 1)
                if op_type in CONTAINERS:
                    continue
                events.append((op_name, op_type, event.duration_ps / 1e9))
    return events


def part_of(op_name: str) -> str:
    lowered = op_name.lower()
    for part, fragments in PARTS:
        if any(fragment in lowered for fragment in fragments):
            return part
    # train_step computes the loss terms at its top level, outside the networks' scopes.
    return "losses and their gradients (top-level ops: contrastive, word-region, hinge)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gf_dim", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    dim, tokens = 384, 24
    model = train_throughput_benchmark.make_model(args.gf_dim, dim, tokens,
                                                  d_steps_per_g_step=1)
    batch = train_throughput_benchmark.random_batch(args.batch_size, dim, tokens)
    step = tf.function(model.train_step)
    for _ in range(3):
        step(batch)["loss/g_total"].numpy()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(args.steps):
            results = step(batch)
        results["loss/g_total"].numpy()
        wall = (time.perf_counter() - start) / args.steps
        tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
        if not paths:
            raise SystemExit(f"the profiler wrote no trace under {logdir}")
        events = op_times(paths[0])
    total = sum(ms for _, _, ms in events) / args.steps
    by_type = collections.Counter()
    by_part = collections.Counter()
    for op_name, op_type, ms in events:
        by_type[op_type] += ms / args.steps
        by_part[part_of(op_name)] += ms / args.steps
    print(f"Machine: {machine.describe()}")
    print(f"\nXMC-GAN 64 px, gf = df = {args.gf_dim}, batch {args.batch_size}, one joint update "
          f"per step, {args.steps} traced steps: {1000 * wall:.0f} ms wall per step (traced), "
          f"{total:.0f} ms of op time per step over {len(events) // args.steps} op runs.\n")
    print("| part of the step | ms per step | share of op time |")
    print("|---|---:|---:|")
    for part, ms in by_part.most_common():
        print(f"| {part} | {ms:.1f} | {100 * ms / total:.1f} % |")
    print("\n| op type | ms per step | share of op time |")
    print("|---|---:|---:|")
    for op_type, ms in by_type.most_common(args.top):
        print(f"| {op_type} | {ms:.1f} | {100 * ms / total:.1f} % |")


if __name__ == "__main__":
    main()
