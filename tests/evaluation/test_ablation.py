"""The ablation runner: a CI-sized study trains two variants, evaluates every checkpoint,
writes a table, JSON and plots that agree with each other, and resumes without retraining."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.evaluation import conftest
from xmcgan_tf import run_dir
from xmcgan_tf.evaluation import ablation
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.models import dual_encoder_io
from xmcgan_tf.networks import dual_encoder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS_DIR = os.path.join(REPO, "gin", "variants")
VARIANTS = ("xmcgan", "xmcgan_no_contrastive")
METRICS = ("fid", "kid", "is", "rprec", "objacc")
NUM_SAMPLES = 110  # R-precision ranks among 100 captions
STEPS, EVAL_EVERY = 4, 2


@pytest.fixture(scope="module")
def evaluator_dir(scenes_dir, tmp_path_factory):
    """A domain evaluator trained for two steps: the protocol, not its quality, is tested."""
    output = str(tmp_path_factory.mktemp("evaluator"))
    domain_evaluator.train(scenes_dir, output, epochs=1, batch_size=16, width=4, cell_dim=8,
                           max_train_examples=32, max_val_examples=16, val_split="train",
                           jit_compile=False)
    return output


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    """A randomly initialised dual encoder standing in for a pretrained R-precision judge."""
    directory = str(tmp_path_factory.mktemp("judge"))
    encoder = dual_encoder.DualEncoder(image_size=64, embedding_dim=conftest.EMBEDDING_DIM,
                                       joint_dim=8, image_width=4, text_hidden_dim=8)
    encoder.build_for_inputs(max_tokens=conftest.MAX_TOKENS)
    dual_encoder_io.save_dual_encoder(encoder, directory, max_tokens=conftest.MAX_TOKENS)
    return directory


def _ablate(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "xmcgan_tf.ablate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _read_table(markdown):
    """The Markdown table of ablation.md as (header cells, rows of cells)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert set("".join(cells[1])) <= {"-"}, lines[1]
    return cells[0], cells[2:]


def _number(cell):
    """'0.1234 ± 0.0100' -> (0.1234, 0.01); '0.5' -> (0.5, None)."""
    value, _, std = cell.partition("±")
    return float(value), (float(std) if std.strip() else None)


def _files(directory):
    return {os.path.join(root, name): os.path.getmtime(os.path.join(root, name))
            for root, _, names in os.walk(directory) for name in names}


def test_study_writes_consistent_table_json_plots_and_resumes(scenes_dir, evaluator_dir,
                                                              judge_dir, tmp_path):
    output = str(tmp_path / "study")
    args = [f"--variants={','.join(VARIANTS)}", f"--train_steps={STEPS}",
            f"--eval_every={EVAL_EVERY}", f"--study_dir={output}", f"--data_dir={scenes_dir}",
            "--base_gin=tests/tiny.gin", f"--gin_param=EMBEDDING_DIM={conftest.EMBEDDING_DIM}",
            # One joint D+G update per step: half the step function to trace, same runner.
            "--gin_param=xmcgan.XMCGAN.d_steps_per_g_step=1",
            f"--metrics={','.join(METRICS)}", f"--num_samples={NUM_SAMPLES}",
            f"--evaluator_dir={evaluator_dir}", f"--judge_dir={judge_dir}",
            f"--cache_dir={tmp_path / 'cache'}", "--batch_size=55", "--seed=3"]
    first = _ablate(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"trained: {', '.join(VARIANTS)};" in first.stdout
    assert "checkpoints evaluated: 4" in first.stdout  # steps 2 and 4 of both variants

    markdown = open(os.path.join(output, ablation.TABLE_FILE)).read()
    assert markdown.strip() in first.stdout  # the table is printed
    header, rows = _read_table(markdown)
    assert header == ["variant", "generator", "step", "FID ↓", "KID ↓", "IS ↑",
                      "R-precision ↑", "object accuracy ↑"]
    assert [r[:3] for r in rows] == [[v, "ema", str(STEPS)] for v in VARIANTS] + [
        [ablation.REAL_ROW, "real", "–"]]
    for row in rows[:2]:
        for cell in row[3:]:
            value, std = _number(cell)
            assert math.isfinite(value) and (std is None or math.isfinite(std)), row
    assert rows[2][3:5] == ["–", "–"]  # no real-image FID / KID
    assert all(math.isfinite(_number(c)[0]) for c in rows[2][5:])
    for text in (f"fid_domain_val_{NUM_SAMPLES}", f"rprec100_dualenc_val_{NUM_SAMPLES}",
                 f"objacc_domain_val_{NUM_SAMPLES}", "feature network `domain`", "split `val`",
                 f"{STEPS} steps per variant", f"{NUM_SAMPLES} images per generator (ema)"):
        assert text in markdown, text

    # ablation.json holds every number; its final rows are the table's.
    document = json.load(open(os.path.join(output, ablation.JSON_FILE)))
    assert document["complete"] and document["protocol"]["num_samples"] == NUM_SAMPLES
    assert [(r["variant"], r["generator"], r["step"]) for r in document["final"]] == [
        (v, "ema", STEPS) for v in VARIANTS] + [(ablation.REAL_ROW, "real", None)]
    for json_row, table_row in zip(document["final"], rows):
        for metric, cell in zip(METRICS, table_row[3:]):
            if cell == "–":
                assert metric not in json_row["values"]
                continue
            value, std = _number(cell)
            assert json_row["values"][metric]["value"] == pytest.approx(value, abs=6e-5)
            if std is not None:
                assert json_row["values"][metric]["std"] == pytest.approx(std, abs=6e-5)
    evaluations = document["evaluations"]
    assert {(r["variant"], r["step"], r["metric"]) for r in evaluations
            if r["generator"] == "ema"} == {(v, s, m) for v in VARIANTS for s in (2, 4)
                                            for m in METRICS}
    for json_row in document["final"][:2]:
        assert {m: v["value"] for m, v in json_row["values"].items()} == {
            r["metric"]: r["value"] for r in evaluations
            if r["variant"] == json_row["variant"] and r["step"] == STEPS
            and r["generator"] == "ema"}
    assert all(r["num_samples"] == NUM_SAMPLES and r["real_split"] == "val"
               for r in evaluations)
    # The same protocol for every run: the real-image references agree across checkpoints.
    for metric in ("is", "rprec", "objacc"):
        real = {r["value"] for r in evaluations if r["generator"] == "real"
                and r["metric"] == metric}
        assert len(real) == 1, (metric, real)
    # The runs were trained with the study's bindings, and the numbers reached the runs' logs.
    for variant in VARIANTS:
        run = ablation.variant_dir(output, variant)
        assert [s for s, _ in run_dir.checkpoints(run)] == [2, 4]
        config = open(os.path.join(run, "config.gin")).read()
        assert "train_lib.train.seed = 3" in config
        assert f"train_config.ScheduleConfig.checkpoint_every = {EVAL_EVERY}" in config
        weight = "1.0" if variant == "xmcgan" else "0.0"
        assert f"xmcgan.XMCGAN.sentence_weight = {weight}" in config
        assert os.path.exists(os.path.join(run, "metrics", f"fid_domain_val_{NUM_SAMPLES}.jsonl"))

    for metric in METRICS:
        path = os.path.join(output, ablation.PLOTS_SUBDIR, f"{metric}.png")
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG" and image.width > 0 and image.height > 0
            assert np.asarray(image).std() > 0  # something is drawn

    # Invoked again, the study trains and evaluates nothing and writes the same table.
    protocol = ablation.EvalProtocol(
        metrics=METRICS, num_samples=NUM_SAMPLES, generators=("ema",), seed=3,
        evaluator_dir=evaluator_dir, judge_dir=judge_dir, cache_dir=str(tmp_path / "cache"))
    study = dict(num_steps=STEPS, eval_every=EVAL_EVERY, data_dir=scenes_dir, protocol=protocol,
                 available=ablation.list_variants(VARIANTS_DIR),
                 study_info={"base gin": "tests/tiny.gin",
                             "gin bindings": f"EMBEDDING_DIM={conftest.EMBEDDING_DIM}; "
                                             "xmcgan.XMCGAN.d_steps_per_g_step=1"})

    def must_not_train(variant, model_dir):
        raise AssertionError(f"{variant} was trained again")

    before = _files(os.path.join(output, ablation.RUNS_SUBDIR))
    again = ablation.run_ablation(output, VARIANTS, train_fn=must_not_train, **study)
    assert again.trained == [] and again.evaluated == []
    assert _files(os.path.join(output, ablation.RUNS_SUBDIR)) == before
    assert open(os.path.join(output, ablation.TABLE_FILE)).read() == markdown == again.table

    # An interrupted run (its last checkpoint missing) is handed back to training, alone.
    run = ablation.variant_dir(output, VARIANTS[1])
    checkpoints = os.path.join(run, "checkpoints")
    aside = str(tmp_path / "aside")
    os.makedirs(aside)
    for name in os.listdir(checkpoints):
        if name.startswith("ckpt-4."):
            os.rename(os.path.join(checkpoints, name), os.path.join(aside, name))
    tf.compat.v1.train.update_checkpoint_state(checkpoints, os.path.join(checkpoints, "ckpt-2"))
    calls = []

    def resume(variant, model_dir):  # stands in for training from ckpt-2 to step 4
        calls.append((variant, model_dir))
        for name in os.listdir(aside):
            os.rename(os.path.join(aside, name), os.path.join(checkpoints, name))
        tf.compat.v1.train.update_checkpoint_state(
            checkpoints, os.path.join(checkpoints, "ckpt-4"),
            [os.path.join(checkpoints, "ckpt-2")])

    resumed = ablation.run_ablation(output, VARIANTS, train_fn=resume, **study)
    assert calls == [(VARIANTS[1], run)] and resumed.trained == [VARIANTS[1]]
    assert resumed.evaluated == []  # ckpt-4 was evaluated before, under the same protocol
    assert resumed.table == markdown


def test_unknown_variant_lists_the_available_ones(scenes_dir, tmp_path):
    done = _ablate("--variants=xmcgan,no_such_loss", "--train_steps=2",
                   f"--study_dir={tmp_path / 'study'}", f"--data_dir={scenes_dir}")
    assert done.returncode == 2
    assert "unknown variant(s) no_such_loss" in done.stderr
    assert "xmcgan_no_contrastive" in done.stderr and "ablation_sent_word" in done.stderr
    assert not os.path.exists(tmp_path / "study")


def test_check_study_names_what_is_missing(scenes_dir, evaluator_dir, judge_dir, tmp_path):
    available = ablation.list_variants(VARIANTS_DIR)
    assert {"xmcgan", "xmcgan_t2icl", "xmcgan_scl", "ablation_img"} <= set(available)
    ok = ablation.EvalProtocol(metrics=METRICS, evaluator_dir=evaluator_dir, judge_dir=judge_dir)

    def check(variants=VARIANTS, protocol=ok, **kwargs):
        ablation.check_study(variants, available=available, num_steps=4, eval_every=2,
                             data_dir=scenes_dir, protocol=protocol, **kwargs)

    check()
    with pytest.raises(ablation.AblationError, match="xmcgan_t2icl.*--encoder_dir"):
        check(variants=("xmcgan", "xmcgan_t2icl"))
    with pytest.raises(ablation.AblationError, match="holds no dual encoder"):
        check(variants=("xmcgan_scl",), encoder_dir=str(tmp_path))
    check(variants=("xmcgan_scl",), encoder_dir=judge_dir)
    with pytest.raises(ablation.AblationError, match="domain evaluator: pass --evaluator_dir"):
        check(protocol=ablation.EvalProtocol(metrics=("fid",)))
    with pytest.raises(ablation.AblationError, match="holds no domain evaluator"):
        check(protocol=ablation.EvalProtocol(metrics=("is",), evaluator_dir=str(tmp_path)))
    # Inception features need no domain evaluator, object accuracy does.
    check(protocol=ablation.EvalProtocol(metrics=("fid",), feature_network="inception"))
    with pytest.raises(ablation.AblationError, match="objacc"):
        check(protocol=ablation.EvalProtocol(metrics=("objacc",), feature_network="inception"))
    with pytest.raises(ablation.AblationError, match="--judge_dir"):
        check(protocol=ablation.EvalProtocol(metrics=("rprec",)))
    with pytest.raises(ablation.AblationError, match="unknown metric 'lpips'"):
        check(protocol=ablation.EvalProtocol(metrics=("lpips",)))
    with pytest.raises(ablation.AblationError, match="no split 'test'"):
        check(protocol=ablation.EvalProtocol(metrics=METRICS, split="test",
                                             evaluator_dir=evaluator_dir, judge_dir=judge_dir))
    with pytest.raises(ablation.AblationError, match="more than once: xmcgan"):
        check(variants=("xmcgan", "xmcgan"))
    assert ablation.keep_checkpoints(4, 2) >= 2 and ablation.keep_checkpoints(5, 2) >= 3


def test_protocol_identity_names_what_changes_the_numbers(scenes_dir):
    """Cached evaluations are reused only under an identical protocol identity."""
    base = ablation.EvalProtocol(metrics=("fid",), evaluator_dir="ev")
    same = dataclasses.replace(base, batch_size=7, cache_dir="elsewhere")
    assert base.identity(scenes_dir) == same.identity(scenes_dir)
    for change in (dict(seed=1), dict(num_samples=10), dict(split="train"),
                   dict(generators=("raw", "ema")), dict(metrics=("fid", "kid")),
                   dict(evaluator_dir="other"), dict(feature_network="inception")):
        assert dataclasses.replace(base, **change).identity(scenes_dir) != base.identity(
            scenes_dir), change
