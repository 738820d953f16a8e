"""Tests of xmcgan_tf.training.distribute: strategy factory, chief/worker roles, input split."""

import json

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf.training import distribute


def test_default_strategy():
    strategy = distribute.make_strategy("default")
    assert distribute.strategy_name(strategy) == "default"
    assert distribute.is_chief(strategy) and distribute.worker_index(strategy) == 0
    assert distribute.local_replicas(strategy) == 1
    context = distribute.worker_input_context(strategy)
    assert (context.num_input_pipelines, context.input_pipeline_id) == (1, 0)
    assert context.get_per_replica_batch_size(8) == 8


def test_mirrored_on_one_cpu():
    strategy = distribute.make_strategy("mirrored", devices=["/cpu:0"])
    assert distribute.strategy_name(strategy) == "mirrored"
    assert strategy.num_replicas_in_sync == 1


def test_split_to_replicas_with_one_replica_passes_the_batch_through():
    batch = {"z": tf.reshape(tf.range(8.0), [4, 2])}
    values = distribute.split_to_replicas(tf.distribute.get_strategy(), batch)
    np.testing.assert_array_equal(values["z"].numpy(), batch["z"].numpy())


@pytest.mark.parametrize("name, kwargs, message", [
    ("multi_worker", {}, "TF_CONFIG"),
    ("tpu", {}, "--tpu"),
    ("horovod", {}, "unknown strategy"),
])
def test_bad_requests_raise(monkeypatch, name, kwargs, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=message):
        distribute.make_strategy(name, **kwargs)


class _FakeResolver:
    def __init__(self, task_type, task_id):
        self.task_type, self.task_id = task_type, task_id


class _FakeMultiWorker(tf.distribute.MultiWorkerMirroredStrategy):
    """Only the attributes `distribute` reads (no cluster is started)."""

    def __init__(self, task_type, task_id):  # pylint: disable=super-init-not-called
        self._resolver = _FakeResolver(task_type, task_id)

    @property
    def cluster_resolver(self):
        return self._resolver


@pytest.mark.parametrize("cluster, task, chief, index", [
    ({"worker": ["a:1", "b:2"]}, ("worker", 0), True, 0),
    ({"worker": ["a:1", "b:2"]}, ("worker", 1), False, 1),
    ({"chief": ["c:0"], "worker": ["a:1"]}, ("chief", 0), True, 0),
    ({"chief": ["c:0"], "worker": ["a:1"]}, ("worker", 0), False, 1),
])
def test_roles_from_tf_config(monkeypatch, cluster, task, chief, index):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": task[0], "index": task[1]}}))
    strategy = _FakeMultiWorker(*task)
    assert distribute.is_chief(strategy) == chief
    assert distribute.worker_index(strategy) == index
    assert distribute.worker_dir("/runs/a", strategy) == f"/runs/a/workers/{task[0]}_{task[1]}"
