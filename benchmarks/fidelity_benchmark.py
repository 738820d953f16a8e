r"""The fidelity benchmark: XMC-GAN, its no-contrastive ablation, T2I_CL and SCL on the same
seed, data and CPU budget, evaluated the same way: which of them draws what the caption says?

    PYTHONPATH=. .venv/bin/python -m benchmarks.fidelity_benchmark \
      --data_dir demo/data/synthetic_64 --evaluator_dir demo/evaluator \
      --judge_dir demo/judge --train_steps 1200 --eval_every 400 --study_dir runs/fidelity

1. Pretrains the frozen dual encoders of T2I_CL and SCL (`xmcgan_tf.pretrain_encoder`,
   `--encoder_steps` each) unless `--t2icl_encoder_dir` / `--scl_encoder_dir` are given.
2. Trains and evaluates every variant through the ablation runner (`xmcgan_tf.evaluation.
   ablation.run_ablation`, layered on `--base_gin`): every checkpoint is scored with FID, KID,
   IS, R-precision and object accuracy, and the real images (and the real-vs-real floor of
   FID and KID) are scored under the same protocol. Training is timed in process CPU minutes
   and wall minutes.
3. Draws, for every variant, the EMA generator's images of the first `--grid_captions`
   captions of the split, each caption written under its image.
4. Writes OUTPUT/fidelity.md (table with CPU minutes, plots, grids) and, with
   `--benchmarks_md`, replaces the section between the FIDELITY markers of that file with it
   (copying the plots and grids next to it).

A rerun resumes: complete runs are not retrained and evaluated checkpoints are not evaluated
again (their recorded CPU minutes are kept in OUTPUT/timing.json).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Sequence

import numpy as np
from absl import app
from absl import flags
from absl import logging
from PIL import Image

from benchmarks import machine
from benchmarks import markdown
from xmcgan_tf import ablate
from xmcgan_tf import files
from xmcgan_tf import grids
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.evaluation import ablation
from xmcgan_tf.models import generator_loading

VARIANTS = ("xmcgan", "xmcgan_no_contrastive", "xmcgan_t2icl", "xmcgan_scl")
ENCODER_EXPERIMENTS = {"xmcgan_t2icl": "experiments/synthetic_encoder_t2icl_64.gin",
                       "xmcgan_scl": "experiments/synthetic_encoder_scl_64.gin"}
BEGIN, END = "<!-- FIDELITY:BEGIN -->", "<!-- FIDELITY:END -->"
TIMING_FILE = "timing.json"
GRIDS_SUBDIR = "grids"

flags.DEFINE_string("data_dir", None, "Dataset of training and evaluation.", required=True)
flags.DEFINE_string("study_dir", "runs/fidelity", "Study directory.")
flags.DEFINE_string("base_gin", "experiments/synthetic_xmcgan_64.gin",
                    "XMC-GAN experiment the variants are layered on.")
flags.DEFINE_list("variants", list(VARIANTS), "Variants of gin/variants/, in table order.")
flags.DEFINE_integer("train_steps", 1200, "Training steps of every variant.", lower_bound=1)
flags.DEFINE_integer("eval_every", 400, "Steps between evaluated checkpoints.", lower_bound=1)
flags.DEFINE_integer("num_samples", 500, "Images per generator and checkpoint.", lower_bound=2)
flags.DEFINE_string("evaluator_dir", None, "Domain evaluator.", required=True)
flags.DEFINE_string("judge_dir", None, "R-precision judge (dual encoder).", required=True)
flags.DEFINE_string("t2icl_encoder_dir", None, "Pretrained T2I_CL encoder; default: pretrain "
                    "one into OUTPUT/encoders/t2icl.")
flags.DEFINE_string("scl_encoder_dir", None, "Pretrained SCL encoder; default: pretrain one "
                    "into OUTPUT/encoders/scl.")
flags.DEFINE_integer("encoder_steps", 200, "Pretraining steps of each missing encoder.",
                     lower_bound=1)
flags.DEFINE_integer("grid_captions", 8, "Captions in each variant's sample grid.",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Training and evaluation seed.")
flags.DEFINE_string("benchmarks_md", None, "Markdown file whose FIDELITY section is replaced "
                    "with the results (e.g. BENCHMARKS.md).")
FLAGS = flags.FLAGS


def pretrain_encoder(variant: str, model_dir: str, data_dir: str, steps: int,
                     seed: int) -> str:
    """Pretrains the frozen dual encoder of `variant` (resumes; skipped when complete)."""
    subprocess.run(
        [sys.executable, "-m", "xmcgan_tf.pretrain_encoder",
         f"--gin_file={ENCODER_EXPERIMENTS[variant]}", f"--gin_param=MODEL_DIR={model_dir!r}",
         f"--gin_param=DATA_DIR={data_dir!r}",
         f"--gin_param=pretrain_lib.pretrain.num_steps={steps}",
         f"--gin_param=pretrain_lib.pretrain.steps_per_checkpoint={min(steps, 100)}",
         f"--gin_param=pretrain_lib.pretrain.seed={seed}"], check=True)
    return model_dir


def save_row(images: np.ndarray, captions: Sequence[str], path: str) -> None:
    """One row of images [N, S, S, 3] in [0, 1], each caption under its image, as PNG."""
    Image.fromarray(grids.image_grid(images, captions, columns=len(images))).save(path)


def write_grids(output: str, variants: Sequence[str], data_dir: str, count: int,
                seed: int) -> dict[str, str]:
    """OUTPUT/grids/<variant>.png and real.png: the first `count` captions of `val`."""
    directory = os.path.join(output, GRIDS_SUBDIR)
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for variant in variants:
        loaded = generator_loading.load_generators(ablation.variant_dir(output, variant))
        config = loaded.run_info["generator_config"]
        batch = next(iter(input_pipeline.ordered_examples(
            data_dir, "val", image_size=int(config["image_size"]), batch_size=count,
            num_samples=count, seed=seed, z_dim=int(config["z_dim"]),
            max_tokens=int(loaded.run_info["max_tokens"]),
            sentence_mode=loaded.run_info.get("sentence_embedding", "official"))))
        captions = [c.decode("utf-8") for c in batch["caption"].numpy()]
        images = loaded.generator_ema(batch["z"], batch["sentence"], batch["words"],
                                      batch["word_mask"], training=False).numpy()
        paths[variant] = os.path.join(directory, f"{variant}.png")
        save_row(images, captions, paths[variant])
        if "real" not in paths:
            paths["real"] = os.path.join(directory, "real.png")
            save_row(batch["image"].numpy(), captions, paths["real"])
    return paths


def report(result: ablation.AblationResult, timing: dict, grids: dict[str, str],
           relative_to: str) -> str:
    """The Markdown section: table with CPU minutes, plots and grids."""
    rel = lambda path: os.path.relpath(path, relative_to)  # noqa: E731
    table = result.table.replace("# Ablation:", "### Fidelity benchmark:")
    lines = [table, "", "Training cost of each variant (process CPU time, all threads; wall "
             "time; the same machine and run):", "", "| variant | CPU minutes | wall minutes |",
             "|---|---|---|"]
    for variant, cost in timing.items():
        lines.append(f"| {variant} | {cost['cpu_s'] / 60:.1f} | {cost['wall_s'] / 60:.1f} |")
    lines += ["", f"Machine: {machine.describe()}", "", "Learning curves:", ""]
    lines += [f"![{metric}]({rel(path)})" for metric, path in result.plot_paths.items()]
    lines += ["", "EMA samples of the first captions of `val` (same z), caption under each "
              "image:", ""]
    lines += [f"- {name}: ![{name}]({rel(path)})" for name, path in grids.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> None:
    del argv
    output = os.path.abspath(FLAGS.study_dir)
    os.makedirs(output, exist_ok=True)
    encoders = {"xmcgan_t2icl": FLAGS.t2icl_encoder_dir, "xmcgan_scl": FLAGS.scl_encoder_dir}
    for variant in set(FLAGS.variants) & set(encoders):
        if not encoders[variant]:
            name = variant.split("_", 1)[1]
            logging.info("pretraining the %s encoder", name)
            encoders[variant] = pretrain_encoder(
                variant, os.path.join(output, "encoders", name), FLAGS.data_dir,
                FLAGS.encoder_steps, FLAGS.seed)

    timing_path = os.path.join(output, TIMING_FILE)
    timing = json.load(open(timing_path)) if os.path.exists(timing_path) else {}
    train_fns = {
        variant: ablate.make_train_fn(
            base_gin=FLAGS.base_gin, gin_files=[], gin_params=[], data_dir=FLAGS.data_dir,
            num_steps=FLAGS.train_steps, eval_every=FLAGS.eval_every, seed=FLAGS.seed,
            encoder_dir=encoders.get(variant))
        for variant in FLAGS.variants}

    def timed_train(variant: str, model_dir: str):
        wall, cpu = time.perf_counter(), time.process_time()
        result = train_fns[variant](variant, model_dir)
        timing[variant] = {"cpu_s": time.process_time() - cpu,
                           "wall_s": time.perf_counter() - wall}
        files.write_json_atomic(timing_path, timing, sort_keys=False)
        return result

    protocol = ablation.EvalProtocol(
        metrics=("fid", "kid", "is", "rprec", "objacc"), num_samples=FLAGS.num_samples,
        feature_network="domain", split="val", generators=("ema",), seed=FLAGS.seed,
        evaluator_dir=FLAGS.evaluator_dir, judge_dir=FLAGS.judge_dir)
    result = ablation.run_ablation(
        output, FLAGS.variants, train_fn=timed_train, num_steps=FLAGS.train_steps,
        eval_every=FLAGS.eval_every, data_dir=FLAGS.data_dir, protocol=protocol,
        available=ablation.list_variants(ablate.VARIANTS_DIR),
        encoder_dir=encoders.get("xmcgan_t2icl") or encoders.get("xmcgan_scl"),
        study_info={"base gin": FLAGS.base_gin})
    grids = write_grids(output, FLAGS.variants, FLAGS.data_dir, FLAGS.grid_captions,
                        FLAGS.seed)
    section = report(result, {v: timing[v] for v in FLAGS.variants if v in timing}, grids,
                     output)
    with open(os.path.join(output, "fidelity.md"), "w", encoding="utf-8") as f:
        f.write(section)
    print(section)
    if FLAGS.benchmarks_md:
        target = os.path.join(os.path.dirname(os.path.abspath(FLAGS.benchmarks_md)),
                              "benchmarks", "results", "fidelity")
        if os.path.exists(target):
            shutil.rmtree(target)
        os.makedirs(target)
        for path in [*result.plot_paths.values(), *grids.values()]:
            kind = "plot_" if path in result.plot_paths.values() else "grid_"
            shutil.copy(path, os.path.join(target, kind + os.path.basename(path)))
        copied = {name: os.path.join(target, "grid_" + os.path.basename(path))
                  for name, path in grids.items()}
        result.plot_paths.update({m: os.path.join(target, "plot_" + os.path.basename(p))
                                  for m, p in result.plot_paths.items()})
        section = report(result, {v: timing[v] for v in FLAGS.variants if v in timing}, copied,
                         os.path.dirname(os.path.abspath(FLAGS.benchmarks_md)))
        markdown.replace_section(FLAGS.benchmarks_md, section, BEGIN, END)


if __name__ == "__main__":
    app.run(main)
