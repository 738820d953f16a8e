"""Deterministic evaluation examples and the on-disk cache of real-image outputs."""

import os

import numpy as np
import pytest
import tensorflow as tf

from data_tools import synthetic_scenes
from xmcgan_tf.data import input_pipeline
from xmcgan_tf.data import schema
from xmcgan_tf.evaluation import real_statistics


def _collect(dataset):
    batches = list(dataset)
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}


def test_examples_are_deterministic_and_independent_of_batch_size(scenes_dir):
    a = _collect(input_pipeline.ordered_examples(scenes_dir, "val", image_size=32, batch_size=7,
                                               num_samples=20, seed=3, z_dim=5))
    b = _collect(input_pipeline.ordered_examples(scenes_dir, "val", image_size=32, batch_size=20,
                                               num_samples=20, seed=3, z_dim=5))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["image"].shape == (20, 32, 32, 3) and a["z"].shape == (20, 5)
    np.testing.assert_array_equal(a["index"], np.arange(20))
    c = _collect(input_pipeline.ordered_examples(scenes_dir, "val", image_size=32, batch_size=20,
                                               num_samples=20, seed=4, z_dim=5))
    assert not np.array_equal(a["z"], c["z"])
    assert not np.array_equal(a["caption_index"], c["caption_index"])  # another caption choice


def test_examples_match_the_records(scenes_dir):
    info = schema.read_dataset_info(scenes_dir)
    data = _collect(input_pipeline.ordered_examples(
        scenes_dir, "val", image_size=64, batch_size=8, num_samples=8, with_objects=True))
    for i in range(8):
        scene = synthetic_scenes.make_scene(0, synthetic_scenes.SPLIT_INDEX_OFFSET["val"] + i)
        np.testing.assert_allclose(data["image"][i], scene.image / 255.0, atol=1e-6)
        k = data["caption_index"][i]
        assert data["caption"][i].decode() == scene.captions[k]
        assert data["states_position"][i] == scene.states_position[k]
        assert data["states_size"][i] == scene.states_size[k]
        assert data["objects/shape"][i, 0] == scene.objects[0]["shape"]
        if len(scene.objects) == 1:
            assert data["objects/shape"][i, 1] == -1  # padding
        # official sentence embedding: sum over all T positions / num_tokens.
        num_tokens = data["word_mask"][i].sum()
        np.testing.assert_allclose(data["sentence"][i], data["words"][i].sum(0) / num_tokens,
                                   rtol=1e-5)
    assert data["words"].shape == (8, info.max_tokens, info.embedding_dim)


def test_dimension_mismatch_is_reported(scenes_dir):
    with pytest.raises(schema.DatasetError, match="embedding dim D"):
        input_pipeline.ordered_examples(scenes_dir, "val", image_size=64, batch_size=4,
                                      embedding_dim=768)


class CountingNetwork:
    """Mean colour per image; counts the images it sees."""

    def __init__(self):
        self.images_seen = 0

    def __call__(self, images):
        self.images_seen += int(images.shape[0])
        return {"features": tf.reduce_mean(images, axis=[1, 2]),
                "logits": tf.reduce_max(images, axis=[1, 2])}


def test_real_outputs_are_cached_and_reused(scenes_dir, tmp_path):
    network = CountingNetwork()
    kwargs = dict(network_name="counting", network_fingerprint="v1", data_dir=scenes_dir,
                  split="val", image_size=32, num_samples=10, cache_dir=str(tmp_path))
    first = real_statistics.real_outputs(network, batch_size=4, **kwargs)
    assert network.images_seen == 10 and first["features"].shape == (10, 3)
    files = sorted(os.listdir(tmp_path))
    assert len([f for f in files if f.endswith(".npz")]) == 1
    assert files[0].startswith("val_32_counting_")
    second = real_statistics.real_outputs(network, batch_size=5, **kwargs)
    assert network.images_seen == 10  # read from the cache, not recomputed
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    # Any change of the key computes anew: resolution, sample count, network weights, split.
    for change in (dict(image_size=16), dict(num_samples=6), dict(network_fingerprint="v2"),
                   dict(split="train")):
        before = network.images_seen
        real_statistics.real_outputs(network, **{**kwargs, **change})
        assert network.images_seen > before, change
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".npz")]) == 5


def test_default_cache_lives_beside_the_dataset(scenes_dir):
    assert real_statistics.default_cache_dir(scenes_dir) == os.path.join(scenes_dir,
                                                                         "eval_cache")
    assert len(real_statistics.dataset_fingerprint(scenes_dir)) == 16
