r"""Time to quality: how many CPU minutes until the EMA generator draws the captions.

    PYTHONPATH=. .venv/bin/python -m benchmarks.time_to_quality_benchmark \
      --data_dir demo/data/synthetic_64 --evaluator_dir demo/evaluator \
      --judge_dir demo/judge --gin_file experiments/synthetic_xmcgan_64.gin \
      --num_steps 5000 --eval_every 250 --model_dir runs/time_to_quality \
      --benchmarks_md BENCHMARKS.md

1. Trains `--gin_file` (default: the demo's recipe) for `--num_steps` in a subprocess
   (`xmcgan_tf.train`), keeping a checkpoint every `--eval_every` steps. The training log
   (`metrics/train.jsonl`) records the process CPU minutes (all threads) and wall minutes at
   every logged step; those at each checkpoint's step are the cost of reaching it.
2. Evaluates the EMA generator of every checkpoint with the demo's protocol
   (`--num_samples` val captions, domain evaluator): object accuracy and R-precision, and the
   real images once.
3. Reports the CPU and wall minutes to reach object accuracy `--thresholds`, writes the curve
   (object accuracy and R-precision against CPU minutes) as a plot and, with
   `--benchmarks_md`, replaces that file's TIME_TO_QUALITY section.

A rerun resumes: training continues from the last checkpoint (a finished run is not
retrained; its CPU minutes then restart at the resumed step and are marked as such) and
evaluated checkpoints are read back from the run's metrics instead of being evaluated again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
from matplotlib import figure as mpl_figure
from matplotlib.backends import backend_agg

from benchmarks import machine
from benchmarks import markdown
from xmcgan_tf import run_dir
from xmcgan_tf.evaluation import eval_lib
from xmcgan_tf.evaluation import registry

BEGIN, END = "<!-- TIME_TO_QUALITY:BEGIN -->", "<!-- TIME_TO_QUALITY:END -->"
RESULTS_DIR = os.path.join("benchmarks", "results", "time_to_quality")
METRICS = ("objacc", "rprec")

flags.DEFINE_string("data_dir", None, "Dataset of training and evaluation.", required=True)
flags.DEFINE_string("evaluator_dir", None, "Domain evaluator (object accuracy).", required=True)
flags.DEFINE_string("judge_dir", None, "R-precision judge (dual encoder).", required=True)
flags.DEFINE_string("gin_file", "experiments/synthetic_xmcgan_64_demo.gin",
                    "Training recipe (relative to gin/ or a path).")
flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings of the training run.")
flags.DEFINE_integer("num_steps", 800, "Training steps.", lower_bound=1)
flags.DEFINE_integer("eval_every", 100, "Steps between evaluated checkpoints.", lower_bound=1)
flags.DEFINE_integer("num_samples", 500, "Val captions per evaluation (the demo's protocol).",
                     lower_bound=2)
flags.DEFINE_list("thresholds", ["0.3", "0.5"], "Object accuracies to time.")
flags.DEFINE_string("model_dir", "runs/time_to_quality", "Run directory of the benchmark.")
flags.DEFINE_integer("seed", 0, "Evaluation seed.")
flags.DEFINE_string("benchmarks_md", None, "Markdown file whose TIME_TO_QUALITY section is "
                    "replaced with the results (e.g. BENCHMARKS.md).")
FLAGS = flags.FLAGS


def train(output: str) -> None:
    """Trains (or resumes) the recipe into `output`, one checkpoint per evaluation."""
    params = [f"MODEL_DIR={output!r}", f"DATA_DIR={FLAGS.data_dir!r}",
              f"train_config.ScheduleConfig.num_steps={FLAGS.num_steps}",
              f"train_config.ScheduleConfig.checkpoint_every={FLAGS.eval_every}",
              "train_config.ScheduleConfig.keep_checkpoints="
              f"{FLAGS.num_steps // FLAGS.eval_every + 1}",
              *FLAGS.gin_param]
    subprocess.run([sys.executable, "-m", "xmcgan_tf.train", f"--gin_file={FLAGS.gin_file}",
                    *[f"--gin_param={p}" for p in params]], check=True)


def cost_at_steps(output: str) -> dict[int, dict[str, float]]:
    """step -> {"cpu": CPU minutes, "wall": wall minutes, "resumed": bool} from the training
    log. A resumed process starts its clocks again: its minutes are added to the last record
    before it (the work lost between that record and the interruption is not counted), and
    its rows are marked `resumed`."""
    path = run_dir.metrics_path(output, run_dir.TRAIN_METRICS_FILE)
    costs: dict[int, dict[str, float]] = {}
    offset = {"cpu": 0.0, "wall": 0.0}
    last = {"cpu": 0.0, "wall": 0.0}
    resumed = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if "perf/process_cpu_minutes" not in record:
                continue
            now = {"cpu": record["perf/process_cpu_minutes"],
                   "wall": record["perf/wall_minutes"]}
            if now["wall"] < last["wall"]:  # a new process
                offset = {k: offset[k] + last[k] for k in offset}
                resumed = True
            last = now
            costs[int(record["step"])] = {"cpu": offset["cpu"] + now["cpu"],
                                          "wall": offset["wall"] + now["wall"],
                                          "resumed": resumed}
    return costs


def recorded(output: str, metric: str, step: int, generator: str) -> float | None:
    """The value recorded in the run's metrics for (metric, step, generator), if any."""
    protocol = registry.get_metric(metric).protocol(
        feature_network="domain", split="val", num_samples=FLAGS.num_samples)
    values = [r["value"] for r in registry.read_reports(output, protocol)
              if r["step"] == step and r["generator"] == generator]
    return values[-1] if values else None


def evaluate(output: str) -> tuple[list[dict], dict[str, float]]:
    """Scores every checkpoint's EMA generator (once: the values are recorded in the run's
    metrics); returns the curve and the real images' values."""
    curve, real = [], {}
    for step, path in run_dir.checkpoints(output):
        row = {"step": step, **{m: recorded(output, m, step, "ema") for m in METRICS}}
        first = {m: recorded(output, m, step, "real") for m in METRICS}
        if None in row.values() or (not real and None in first.values()):
            logging.info("evaluating step %d", step)
            for result in eval_lib.evaluate(
                    output, checkpoint=path, metrics=list(METRICS),
                    num_samples=FLAGS.num_samples, feature_network="domain",
                    evaluator_dir=FLAGS.evaluator_dir, judge_dir=FLAGS.judge_dir,
                    generators=["ema"], seed=FLAGS.seed, real_reference=not real):
                (real if result.generator == "real" else row)[result.metric] = result.value
        elif not real:
            real.update(first)
        curve.append(row)
    return curve, real


def minutes_to(curve: Sequence[dict], threshold: float) -> dict | None:
    """The first evaluated row whose object accuracy reaches `threshold`."""
    return next((row for row in curve if row["objacc"] >= threshold), None)


def plot(curve: Sequence[dict], real: dict[str, float], path: str) -> None:
    """Object accuracy and R-precision of G_ema against CPU minutes, real images dashed."""
    fig = mpl_figure.Figure(figsize=(6.4, 4.0))
    backend_agg.FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    minutes = [row["cpu"] for row in curve]
    for metric, label, color in (("objacc", "object accuracy", "C0"),
                                 ("rprec", "R-precision", "C1")):
        ax.plot(minutes, [row[metric] for row in curve], marker="o", color=color, label=label)
        if metric in real:
            ax.axhline(real[metric], color=color, linestyle="--", linewidth=1,
                       label=f"{label}, real images")
    ax.set_xlabel("training CPU minutes (process time, all threads)")
    ax.set_ylabel("G_ema, val captions")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def report(curve: Sequence[dict], real: dict[str, float], plot_path: str,
           relative_to: str) -> str:
    """The Markdown section."""
    command = ("PYTHONPATH=. .venv/bin/python -m benchmarks.time_to_quality_benchmark "
               f"--data_dir {FLAGS.data_dir} --evaluator_dir {FLAGS.evaluator_dir} "
               f"--judge_dir {FLAGS.judge_dir} --gin_file {FLAGS.gin_file} "
               f"--num_steps {FLAGS.num_steps} --eval_every {FLAGS.eval_every} "
               f"--num_samples {FLAGS.num_samples}"
               + "".join(f" --gin_param=\"{p}\"" for p in FLAGS.gin_param))
    lines = ["### Time to quality", "", f"`{command}`", "",
             f"Machine: {machine.describe()}", "",
             "| objacc target | reached at step | CPU minutes | wall minutes |",
             "|---:|---:|---:|---:|"]
    for threshold in sorted(float(t) for t in FLAGS.thresholds):
        row = minutes_to(curve, threshold)
        if row is None:
            best = max(curve, key=lambda r: r["objacc"])
            lines.append(f"| {threshold:.2f} | not reached (best {best['objacc']:.3f} at step "
                         f"{best['step']}) | > {curve[-1]['cpu']:.1f} | "
                         f"> {curve[-1]['wall']:.1f} |")
        else:
            lines.append(f"| {threshold:.2f} | {row['step']} | {row['cpu']:.1f} | "
                         f"{row['wall']:.1f} |")
    lines += ["", "| step | CPU minutes | wall minutes | object accuracy | R-precision |",
              "|---:|---:|---:|---:|---:|"]
    for row in curve:
        mark = " (resumed)" if row.get("resumed") else ""
        lines.append(f"| {row['step']}{mark} | {row['cpu']:.1f} | {row['wall']:.1f} | "
                     f"{row['objacc']:.3f} | {row['rprec']:.3f} |")
    lines.append(f"| real images | | | {real.get('objacc', float('nan')):.3f} | "
                 f"{real.get('rprec', float('nan')):.3f} |")
    lines += ["", f"![time to quality]({os.path.relpath(plot_path, relative_to)})", ""]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    del argv
    if FLAGS.num_steps % FLAGS.eval_every:
        raise app.UsageError(f"--num_steps {FLAGS.num_steps} is not a multiple of "
                             f"--eval_every {FLAGS.eval_every}")
    output = os.path.abspath(FLAGS.model_dir)
    train(output)
    costs = cost_at_steps(output)
    curve, real = evaluate(output)
    for row in curve:
        if row["step"] not in costs:
            raise RuntimeError(f"{output}/metrics/train.jsonl has no timing at step "
                               f"{row['step']}: log_every must divide --eval_every")
        row.update(costs[row["step"]])
    plot_path = os.path.join(output, "time_to_quality.png")
    plot(curve, real, plot_path)
    section = report(curve, real, plot_path, output)
    with open(os.path.join(output, "time_to_quality.md"), "w", encoding="utf-8") as f:
        f.write(section)
    print(section)
    if FLAGS.benchmarks_md:
        root = os.path.dirname(os.path.abspath(FLAGS.benchmarks_md))
        os.makedirs(os.path.join(root, RESULTS_DIR), exist_ok=True)
        copied = os.path.join(root, RESULTS_DIR, "time_to_quality.png")
        shutil.copy(plot_path, copied)
        markdown.replace_section(FLAGS.benchmarks_md, report(curve, real, copied, root),
                                 BEGIN, END)


if __name__ == "__main__":
    app.run(main)
