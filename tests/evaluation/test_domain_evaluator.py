"""Domain evaluator: model config, targets, accuracy bookkeeping, training plumbing, ≥ 95 %."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.evaluation import conftest
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.evaluation import object_accuracy


def test_outputs_shapes_and_config_round_trip():
    model = domain_evaluator.DomainEvaluator(num_shapes=5, num_colors=8, num_sizes=2, grid=3,
                                             width=4, cell_dim=6)
    out = model(tf.random.uniform([2, 128, 128, 3]), training=False)  # resized to 64
    assert out["features"].shape == (2, 9 * 6)
    assert out["shape_logits"].shape == (2, 9, 6)
    assert out["color_logits"].shape == (2, 9, 8)
    assert out["size_logits"].shape == (2, 9, 2)
    clone = domain_evaluator.DomainEvaluator.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    with pytest.raises(ValueError, match="allowed sizes"):
        domain_evaluator.DomainEvaluator(image_size=48)


def test_object_class_logits_is_the_object_mixture():
    rng = np.random.default_rng(0)
    outputs = {"shape_logits": rng.normal(size=(3, 9, 6)).astype(np.float32) * 3,
               "color_logits": rng.normal(size=(3, 9, 8)).astype(np.float32) * 3}
    logits = domain_evaluator.object_class_logits(outputs, eps=0.0).numpy()
    softmax = lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)  # noqa: E731
    p_shape, p_color = softmax(outputs["shape_logits"])[..., 1:], softmax(outputs["color_logits"])
    joint = np.zeros((3, 5, 8))
    for cell in range(9):
        joint += p_shape[:, cell, :, None] * p_color[:, cell, None, :]
    expected = joint.reshape(3, 40) / joint.reshape(3, 40).sum(1, keepdims=True)
    np.testing.assert_allclose(np.exp(logits), expected, rtol=1e-5)
    # One confident object of shape 2, colour 5: the label id 2 * 8 + 5.
    one = {"shape_logits": np.full((1, 9, 6), -30.0, np.float32),
           "color_logits": np.full((1, 9, 8), -30.0, np.float32)}
    one["shape_logits"][0, :, 0] = 30.0
    one["shape_logits"][0, 4] = -30.0
    one["shape_logits"][0, 4, 3] = 30.0
    one["color_logits"][0, 4, 5] = 30.0
    assert np.argmax(domain_evaluator.object_class_logits(one)[0]) == 2 * 8 + 5


def test_cell_targets_and_attribute_accuracy():
    objects = {"shape": np.array([[1, 4], [0, -1]]), "color": np.array([[2, 7], [5, -1]]),
               "size": np.array([[1, 0], [0, -1]]), "row": np.array([[0, 2], [1, -1]]),
               "col": np.array([[1, 2], [1, -1]])}
    targets = domain_evaluator.cell_targets(objects, 3)
    assert targets["shape"][0].tolist() == [0, 2, 0, 0, 0, 0, 0, 0, 5]
    assert targets["color"][1, 4] == 5 and targets["shape"][1, 4] == 1
    perfect = domain_evaluator.attribute_accuracy(targets, targets)
    assert all(perfect[a] == 1.0 for a in domain_evaluator.ATTRIBUTES)
    wrong = {k: v.copy() for k, v in targets.items()}
    wrong["color"][0, 1] = 3  # one of three objects: wrong colour
    wrong["shape"][1, 0] = 2  # a hallucinated object in an empty cell
    acc = domain_evaluator.attribute_accuracy(wrong, targets)
    assert acc["color"] == pytest.approx(2 / 3) and acc["shape"] == 1.0
    assert acc["object"] == pytest.approx(2 / 3)
    assert acc["empty_cells"] == pytest.approx(1 - 1 / 15)
    assert acc["scene"] == 0.0
    clash = dict(objects, row=np.array([[0, 0], [1, -1]]), col=np.array([[1, 1], [1, -1]]))
    with pytest.raises(ValueError, match="two objects in grid cell"):
        domain_evaluator.cell_targets(clash, 3)


def test_mirroring_moves_targets_with_the_image():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 8, 8, 3), dtype=np.uint8)
    targets = {"shape": rng.integers(0, 6, size=(64, 9)), "color": rng.integers(0, 8, (64, 9))}
    mirrored, moved = domain_evaluator._mirror_half(np.random.default_rng(1), images, targets, 3)
    flipped = [i for i in range(64) if not np.array_equal(mirrored[i], images[i])]
    assert 10 < len(flipped) < 54
    for i in range(64):
        if i in flipped:
            np.testing.assert_array_equal(mirrored[i], images[i][:, ::-1])
            grid = targets["shape"][i].reshape(3, 3)
            np.testing.assert_array_equal(moved["shape"][i].reshape(3, 3), grid[:, ::-1])
        else:
            np.testing.assert_array_equal(moved["color"][i], targets["color"][i])


def test_load_split_reads_ground_truth(scenes_dir):
    from data_tools import synthetic_scenes

    images, objects = domain_evaluator.load_split(scenes_dir, "val", num_examples=5)
    assert images.shape == (5, 64, 64, 3) and images.dtype == np.uint8
    for i in range(5):
        scene = synthetic_scenes.make_scene(0, synthetic_scenes.SPLIT_INDEX_OFFSET["val"] + i)
        np.testing.assert_array_equal(images[i], scene.image)
        assert objects["label"][i] == scene.label
        for k, obj in enumerate(scene.objects):
            assert [objects[f][i, k] for f in ("shape", "color", "size", "row", "col")] == [
                obj[f] for f in ("shape", "color", "size", "row", "col")]


def test_training_plumbing_save_and_load(trained_evaluator, scenes_dir):
    output, report = trained_evaluator
    for name in (domain_evaluator.CONFIG_FILE, domain_evaluator.WEIGHTS_FILE,
                 domain_evaluator.ACCURACY_FILE):
        assert os.path.exists(os.path.join(output, name))
    with open(os.path.join(output, domain_evaluator.ACCURACY_FILE)) as f:
        assert json.load(f) == report
    assert report["train_examples"] == 64 and report["epochs"] == 30
    assert all(0.0 <= report[a] <= 1.0 for a in domain_evaluator.ATTRIBUTES)
    assert report["color"] > 0.5 and report["size"] > 0.5  # it learns (chance: 1/8, 1/2)
    config = domain_evaluator.read_config(output)
    assert config["vocabulary"]["shapes"][0] == "circle" and config["vocabulary"]["grid"] == 3
    # The loaded evaluator reproduces the reported accuracy exactly.
    loaded = domain_evaluator.load(output)
    images, objects = domain_evaluator.load_split(scenes_dir, "train")
    outputs = domain_evaluator.predict(loaded, images)
    acc = domain_evaluator.attribute_accuracy(domain_evaluator.predict_objects(outputs),
                                              domain_evaluator.cell_targets(objects, 3))
    assert all(acc[a] == report[a] for a in domain_evaluator.ATTRIBUTES)
    # FID/KID features are scaled to unit RMS on the training images.
    assert np.sqrt(np.mean(outputs["features"] ** 2)) == pytest.approx(1.0, rel=1e-4)
    assert config["model"]["feature_scale"] == loaded.feature_scale != 1.0
    assert len(domain_evaluator.fingerprint(output)) == 16
    with pytest.raises(FileNotFoundError, match="train_evaluator"):
        domain_evaluator.load(str(os.path.dirname(output)))


def test_object_accuracy_of_real_images_equals_evaluator_accuracy(trained_evaluator,
                                                                  scenes_dir):
    output, report = trained_evaluator
    images, objects = domain_evaluator.load_split(scenes_dir, "train")
    predictions = domain_evaluator.predict_objects(
        domain_evaluator.predict(domain_evaluator.load(output), images))
    everything_stated = np.ones(len(images))
    acc = object_accuracy.object_accuracy(predictions, objects, everything_stated,
                                          everything_stated, objects["label"], 3)
    assert 0.0 < report["object"] < 1.0  # a non-trivial evaluator
    assert acc.object_averaged == pytest.approx(report["object"])
    # With the captions' own states fewer attributes are checked: recall can only rise.
    from_captions = object_accuracy.object_accuracy(
        predictions, objects, np.zeros(len(images)), np.zeros(len(images)), objects["label"], 3)
    assert from_captions.object_averaged >= acc.object_averaged


@pytest.mark.slow
def test_evaluator_reaches_95_percent_on_every_attribute(tmp_path):
    data_dir = conftest.write_scenes(tmp_path / "data", num_train=3000, num_val=500, seed=1)
    output = str(tmp_path / "evaluator")
    report = domain_evaluator.train(data_dir, output, epochs=8)  # defaults otherwise
    for attribute in domain_evaluator.REQUIRED_ATTRIBUTES:
        assert report[attribute] >= 0.95, (attribute, report)
    # Object accuracy of the held-out real images equals the evaluator's per-object accuracy.
    images, objects = domain_evaluator.load_split(data_dir, "val")
    predictions = domain_evaluator.predict_objects(
        domain_evaluator.predict(domain_evaluator.load(output), images))
    ones = np.ones(len(images))
    acc = object_accuracy.object_accuracy(predictions, objects, ones, ones, objects["label"], 3)
    assert acc.object_averaged == pytest.approx(report["object"])
    assert acc.image_averaged >= 0.95
