"""End to end on gin/tests/tiny.gin: train → checkpoint → SIGKILL → resume → continue.

A run is killed with SIGKILL once it has written a checkpoint, restarted with the same command,
and must log exactly the losses an uninterrupted run logs for the same steps. The run directory
then holds its config, TensorBoard events and samples, and its generators load for evaluation
and export.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from xmcgan_tf import run_dir
from tests.training import tiny_dataset
from xmcgan_tf.models import generator_loading
from xmcgan_tf.training import summaries

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T, D = 6, 16  # MAX_TOKENS and EMBEDDING_DIM of gin/tests/tiny.gin


def _command(model_dir: str, data_dir: str, num_steps: int) -> list[str]:
    return [sys.executable, "-m", "xmcgan_tf.train", "--gin_file=tests/tiny.gin",
            f"--gin_param=MODEL_DIR='{model_dir}'", f"--gin_param=DATA_DIR='{data_dir}'",
            f"--gin_param=train_config.ScheduleConfig.num_steps={num_steps}"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _run(model_dir: str, data_dir: str, num_steps: int) -> subprocess.Popen:
    return subprocess.Popen(_command(model_dir, data_dir, num_steps), cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _losses_by_step(model_dir: str) -> dict[int, dict]:
    """The logged record of every step."""
    return {r["step"]: {k: v for k, v in r.items() if k.startswith(("loss/", "scores/",
                                                                    "contrastive/"))}
            for r in summaries.read_train_metrics(model_dir)}


def _wait(process: subprocess.Popen, timeout: float) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-6000:]
    return output


def test_kill_resume_continue(tmp_path):
    data_dir = str(tmp_path / "data")
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=D)
    killed_dir = str(tmp_path / "killed")

    # 1. Train "forever"; SIGKILL as soon as the first checkpoint (step 2) exists.
    process = subprocess.Popen(_command(killed_dir, data_dir, 1000), cwd=REPO, env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = run_dir.checkpoint_dir(killed_dir)
    deadline = time.time() + 900
    while tf.train.latest_checkpoint(checkpoints) is None:
        assert process.poll() is None, "training exited before writing a checkpoint"
        assert time.time() < deadline, "no checkpoint within 900 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed_at = int(tf.train.latest_checkpoint(checkpoints).rsplit("-", 1)[1])
    assert resumed_at >= 2 and resumed_at % 2 == 0
    stop = resumed_at + 2

    # 2. Restart the same run, and 3. train an uninterrupted twin, side by side.
    straight_dir = str(tmp_path / "straight")
    leftover = os.path.join(checkpoints, f"ckpt-{resumed_at + 1}_temp")  # a save killed midway
    os.makedirs(os.path.join(leftover, "part-00000-of-00001"))
    resumed, straight = _run(killed_dir, data_dir, stop), _run(straight_dir, data_dir, stop)
    resumed_log = _wait(resumed, 900)
    _wait(straight, 900)
    assert f"resumed from {checkpoints}/ckpt-{resumed_at}" in resumed_log
    assert not os.path.exists(leftover)
    steps = [r["step"] for r in summaries.read_train_metrics(killed_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == stop  # every step logged once

    expected, actual = _losses_by_step(straight_dir), _losses_by_step(killed_dir)
    for step in (resumed_at + 1, stop):
        assert actual[step].keys() == expected[step].keys()
        for name, value in expected[step].items():
            np.testing.assert_allclose(actual[step][name], value, rtol=1e-5, atol=1e-6,
                                       err_msg=f"step {step} {name}")

    # The run directory explains itself (CONTRACTS §7).
    run_info = run_dir.read_run_info(killed_dir)
    assert run_info["strategy"] == "default" and run_info["replicas"] == 1
    assert run_info["max_tokens"] == T and run_info["generator_config"]["gf_dim"] == 4
    assert run_info["dataset_info"]["embedding_dim"] == D
    with open(os.path.join(killed_dir, "config.gin")) as f:
        config = f.read()
    assert "generator.Generator.gf_dim = %GF_DIM" in config and "GF_DIM = 4" in config
    assert os.path.exists(run_dir.sample_path(killed_dir, stop))
    events = [os.path.join(killed_dir, "tensorboard", name)
              for name in os.listdir(os.path.join(killed_dir, "tensorboard"))]
    tags = {value.tag for path in events for event in tf.compat.v1.train.summary_iterator(path)
            for value in event.summary.value}
    assert {"loss/d_word", "loss/g_image_d", "contrastive/sentence_acc", "learning_rate/g",
            "perf/steps_per_sec", "samples/generator_ema", "config/operative_gin"} <= tags

    loaded = generator_loading.load_generators(killed_dir)
    assert loaded.step == stop and loaded.checkpoint_path.endswith(f"ckpt-{stop}")
    straight_loaded = generator_loading.load_generators(straight_dir)
    for a, b in zip(loaded.generator_ema.weights, straight_loaded.generator_ema.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_gin_binding_exits_with_a_message_naming_it(tmp_path):
    command = _command(str(tmp_path / "run"), str(tmp_path / "data"), 2)
    command.append("--gin_param=generator.Generator.gff_dim=3")
    result = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 2
    assert "gff_dim" in result.stderr and "bad gin configuration" in result.stderr

