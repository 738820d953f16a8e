"""Images per second of the synthetic-scene generator (`data_tools.synthetic_scenes`).

Times `make_scene` (image + captions + ground truth) and, separately, `make_scene` plus PNG
encoding (what the TFRecord writer does per image before the text encoder), in one process
and one thread, at 64 and 128 px, and prints a Markdown table and the machine it ran on.

    PYTHONPATH=. python benchmarks/synthetic_scenes_benchmark.py [--num_images 2000]

Wall-clock and CPU-time rates are both reported: on a shared machine the wall-clock rate
falls with the load while the CPU-time rate stays closer to what an idle core delivers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks import machine
from data_tools import image_io
from data_tools import synthetic_scenes


def _time(fn, num_images: int, repeats: int) -> tuple[float, float]:
    """Best (wall-clock, CPU-time) images/s over `repeats` runs of `num_images` calls."""
    best_wall, best_cpu = 0.0, 0.0
    for r in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(num_images):
            fn(r * num_images + i)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best_wall = max(best_wall, num_images / wall)
        best_cpu = max(best_cpu, num_images / max(cpu, 1e-9))
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_images", type=int, default=2000, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is shown")
    parser.add_argument("--sizes", default="64,128", help="comma-separated image sizes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        synthetic_scenes.make_scene(args.seed, 0, size)  # warm-up (imports, caches)
        scene_rates = _time(lambda i: synthetic_scenes.make_scene(args.seed, i, size),
                            args.num_images, args.repeats)
        png_rates = _time(
            lambda i: image_io.encode_png(synthetic_scenes.make_scene(args.seed, i, size).image),
            args.num_images, args.repeats)
        rows.append((size, scene_rates, png_rates))

    print(f"Synthetic scenes: best of {args.repeats} runs of {args.num_images} images, one "
          f"thread, seed {args.seed}.\n")
    print("| image size | make_scene img/s (wall) | make_scene img/s (CPU) "
          "| + PNG encode img/s (wall) | + PNG encode img/s (CPU) |")
    print("|---|---|---|---|---|")
    for size, (scene_wall, scene_cpu), (png_wall, png_cpu) in rows:
        print(f"| {size} px | {scene_wall:.0f} | {scene_cpu:.0f} | {png_wall:.0f} "
              f"| {png_cpu:.0f} |")
    print(f"\nMachine: {machine.describe()}, NumPy {np.__version__} (at the end).")

if __name__ == "__main__":
    main()
