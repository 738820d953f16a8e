"""MultiWorkerMirroredStrategy: two worker processes on localhost from TF_CONFIG train the tiny
config, checkpoint (each worker its input position) and resume."""

import json
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from xmcgan_tf import run_dir
from tests.training import tiny_dataset
from xmcgan_tf.models import generator_loading
from xmcgan_tf.training import summaries

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_cluster(model_dir: str, data_dir: str, num_steps: int) -> list[str]:
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        command = [sys.executable, "-m", "xmcgan_tf.train", "--gin_file=tests/tiny.gin",
                   "--strategy=multi_worker", f"--gin_param=MODEL_DIR='{model_dir}'",
                   f"--gin_param=DATA_DIR='{data_dir}'",
                   f"--gin_param=train_config.ScheduleConfig.num_steps={num_steps}",
                   "--gin_param=train_config.ScheduleConfig.batch_size=8"]
        env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=1200)
        assert process.returncode == 0, output[-6000:]
        outputs.append(output)
    return outputs


@pytest.mark.slow
def test_two_workers_train_checkpoint_and_resume(tmp_path):
    data_dir, model_dir = str(tmp_path / "data"), str(tmp_path / "run")
    tiny_dataset.write_dataset(data_dir, max_tokens=6, embedding_dim=16)

    _run_cluster(model_dir, data_dir, num_steps=2)
    info = run_dir.read_run_info(model_dir)
    assert info["strategy"] == "multi_worker" and info["replicas"] == 2
    assert tf.train.latest_checkpoint(run_dir.checkpoint_dir(model_dir)).endswith(
        "ckpt-2")
    worker_checkpoints = os.path.join(model_dir, "workers", "worker_1", "checkpoints")
    assert tf.train.latest_checkpoint(worker_checkpoints).endswith("ckpt-2")
    assert not os.path.exists(os.path.join(model_dir, "workers", "worker_0"))  # the chief

    outputs = _run_cluster(model_dir, data_dir, num_steps=3)
    assert all("resumed from" in output for output in outputs)
    assert [r["step"] for r in summaries.read_train_metrics(model_dir)] == [1, 2, 3]
    assert generator_loading.load_generators(model_dir).step == 3
