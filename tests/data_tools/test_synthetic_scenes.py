"""Tests of data_tools.synthetic_scenes: determinism, ground truth, captions, outputs."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from data_tools import image_io
from data_tools import synthetic_scenes as ss
from xmcgan_tf.data import schema

T, D = 4, 2
NUM_SCENES = 300


def fake_embed(captions):
    n = len(captions)
    emb = np.stack([np.full((T, D), len(c), np.float32) for c in captions])
    return emb, np.full([n], 3, np.int32)


@pytest.fixture(scope="module")
def scenes():
    return [ss.make_scene(7, i, 64) for i in range(NUM_SCENES)]


def mentions(caption: str, words) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", caption) for w in words)


POSITION_WORDS = {"top", "upper", "bottom", "lower", "left", "right", "center", "middle",
                  "centered"}
# Words that place an object in a row / column ("on the left" implies the middle row, "at the
# top" the centre column).
ROW_WORDS = (("top", "upper"), ("middle", "center", "left", "right"), ("bottom", "lower"))
COL_WORDS = (("left",), ("center", "middle", "centered", "top", "upper", "bottom", "lower"),
             ("right",))


def test_constants():
    assert len(ss.SHAPES) == 5 and len(ss.COLORS) == 8 and ss.SIZES == ("small", "large")
    assert ss.NUM_CLASSES == 40 == len(ss.CLASS_NAMES)
    assert ss.CLASS_NAMES[ss.class_id(2, 3)] == f"{ss.SHAPES[2]}_{ss.COLORS[3]}"
    words = [w for c in ss.COLORS for w in ss.COLOR_WORDS[c]]
    words += [w for s in ss.SHAPES for w in ss.SHAPE_WORDS[s]]
    words += [w for s in ss.SIZES for w in ss.SIZE_WORDS[s]]
    assert len(words) == len(set(words)), "a synonym names two attribute values"


def test_deterministic_and_independent_of_the_other_scenes():
    a, b = ss.make_scene(3, 11, 64), ss.make_scene(3, 11, 64)
    np.testing.assert_array_equal(a.image, b.image)
    assert (a.captions, a.objects, a.label, a.states_position, a.states_size, a.boxes) == (
        b.captions, b.objects, b.label, b.states_position, b.states_size, b.boxes)
    c = ss.make_scene(3, 12, 64)
    d = ss.make_scene(4, 11, 64)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.image, d.image)
    items = ss.SceneItems("train", 20, seed=3, image_size=64)
    np.testing.assert_array_equal(image_io.decode_rgb(items[11].image_bytes), a.image)
    assert items[11].captions == a.captions


def test_shape_map_redraws_only_the_shapes():
    def one_triangle(scene):
        return [o["shape"] for o in scene.objects].count(2) == 1 and len(scene.objects) == 2

    index = next(i for i in range(100) if one_triangle(ss.make_scene(3, i, 64)))
    scene = ss.make_scene(3, index, 64)
    identity = ss.make_scene(3, index, 64, shape_map=range(len(ss.SHAPES)))
    np.testing.assert_array_equal(identity.image, scene.image)
    triangle_as_circle = ss.make_scene(3, index, 64, shape_map=[0, 1, 0, 3, 4])
    assert (triangle_as_circle.captions, triangle_as_circle.objects) == (
        scene.captions, scene.objects)  # the captions still name a triangle
    k = [o["shape"] for o in scene.objects].index(2)
    assert triangle_as_circle.boxes[1 - k] == scene.boxes[1 - k]
    changed = np.any(triangle_as_circle.image != scene.image, axis=-1)
    rows, cols = np.nonzero(changed)
    x, y, width, height = triangle_as_circle.boxes[k]  # the circle covers the triangle
    assert changed.sum() > 10
    assert cols.min() >= x - 1 and cols.max() <= x + width
    assert rows.min() >= y - 1 and rows.max() <= y + height


@pytest.mark.parametrize("size", [64, 128])
def test_image_shape_and_dtype(size):
    scene = ss.make_scene(0, 1, size)
    assert scene.image.shape == (size, size, 3) and scene.image.dtype == np.uint8
    with pytest.raises(ValueError, match="image_size"):
        ss.make_scene(0, 1, 16)


def test_label_formula_and_object_fields(scenes):
    for s in scenes:
        assert s.label == s.objects[0]["shape"] * len(ss.COLORS) + s.objects[0]["color"]
        assert 1 <= len(s.objects) <= 2
        for o in s.objects:
            assert set(o) == set(schema.OBJECT_FIELDS)
            assert 0 <= o["shape"] < 5 and 0 <= o["color"] < 8 and 0 <= o["size"] < 2
            assert 0 <= o["row"] < 3 and 0 <= o["col"] < 3
    counts = np.bincount([len(s.objects) for s in scenes])
    assert counts[1] > 0.35 * NUM_SCENES and counts[2] > 0.35 * NUM_SCENES
    assert {o["shape"] for s in scenes for o in s.objects} == set(range(5))
    assert {o["color"] for s in scenes for o in s.objects} == set(range(8))
    assert {(o["row"], o["col"]) for s in scenes for o in s.objects} == {
        (r, c) for r in range(3) for c in range(3)}


def test_objects_are_drawn_where_the_ground_truth_says(scenes):
    size = 64
    for s in scenes:
        for o, (x, y, w, h), area in zip(s.objects, s.boxes, s.areas):
            cx, cy = x + w / 2, y + h / 2
            assert int(cx * 3 // size) == o["col"] and int(cy * 3 // size) == o["row"]
            assert 0 <= x and 0 <= y and x + w <= size and y + h <= size
            assert 0.5 * w * h > 0 and area <= w * h
            if ss.SHAPES[o["shape"]] in ("circle", "square"):  # the centre pixel is the colour
                pixel = s.image[int(cy), int(cx)].astype(int)
                np.testing.assert_allclose(pixel, ss.COLOR_RGB[o["color"]], atol=16)
        if len(s.objects) == 2:
            assert s.objects[0]["row"] * 3 + s.objects[0]["col"] != (
                s.objects[1]["row"] * 3 + s.objects[1]["col"])
    for shape in range(len(ss.SHAPES)):  # size = extent: a large shape beats a small one
        areas = [[a for s in scenes for o, a in zip(s.objects, s.areas)
                  if o["size"] == z and o["shape"] == shape] for z in (0, 1)]
        assert min(areas[1]) > 1.5 * max(areas[0])
    sides = [[max(b[2], b[3]) for s in scenes for o, b in zip(s.objects, s.boxes)
              if o["size"] == z] for z in (0, 1)]
    assert min(sides[1]) > max(sides[0])


def test_two_objects_never_overlap(scenes):
    checked = 0
    for s in scenes:
        if len(s.objects) == 2:
            (x0, y0, w0, h0), (x1, y1, w1, h1) = s.boxes
            ix = max(0.0, min(x0 + w0, x1 + w1) - max(x0, x1))
            iy = max(0.0, min(y0 + h0, y1 + h1) - max(y0, y1))
            assert ix * iy == 0, (s.boxes, s.objects)
            checked += 1
    assert checked > 100


def test_relations_hold():
    a = {"row": 0, "col": 0}
    b = {"row": 2, "col": 1}
    assert ss.relations(a, b) == ["left", "above"]
    assert ss.relations(b, a) == ["right", "below"]


def test_captions_name_the_right_colour_shape_size_and_position(scenes):
    flags_seen = set()
    for s in scenes:
        assert len(s.captions) == ss.CAPTIONS_PER_IMAGE == len(set(s.captions))
        assert len(s.states_position) == len(s.states_size) == ss.CAPTIONS_PER_IMAGE
        for caption, position, size in zip(s.captions, s.states_position, s.states_size):
            flags_seen.add((len(s.objects), position, size))
            for o in s.objects:
                assert mentions(caption, ss.COLOR_WORDS[ss.COLORS[o["color"]]]), caption
                assert mentions(caption, ss.SHAPE_WORDS[ss.SHAPES[o["shape"]]]), caption
                if size:
                    assert mentions(caption, ss.SIZE_WORDS[ss.SIZES[o["size"]]]), caption
                if position:
                    assert mentions(caption, ROW_WORDS[o["row"]]), caption
                    assert mentions(caption, COL_WORDS[o["col"]]), caption
            other_colors = {c for c in ss.COLORS} - {ss.COLORS[o["color"]] for o in s.objects}
            for c in other_colors:
                assert not mentions(caption, ss.COLOR_WORDS[c]), caption
            all_sizes = [w for z in ss.SIZES for w in ss.SIZE_WORDS[z]]
            if not size:
                assert not mentions(caption, all_sizes), caption
            if not position and len(s.objects) == 1:
                assert not mentions(caption, POSITION_WORDS), caption
    assert flags_seen == {(n, p, z) for n in (1, 2) for p in (0, 1) for z in (0, 1)}


def test_two_object_relation_captions_are_true():
    pattern = re.compile(r"(left of|right of|above|over|higher than|below|under|beneath)")
    names = {"left of": "left", "right of": "right", "above": "above", "over": "above",
             "higher than": "above", "below": "below", "under": "below", "beneath": "below"}
    checked = 0
    for i in range(200):
        s = ss.make_scene(11, i, 32)
        if len(s.objects) != 2:
            continue
        for caption in s.captions:
            m = pattern.search(caption)
            if not m or " with " in caption:
                continue  # "B with A <relation> it" reverses the word order; checked below
            before, after = caption[:m.start()], caption[m.end():]
            a = [o for o in s.objects if mentions(before, ss.SHAPE_WORDS[ss.SHAPES[o["shape"]]])
                 and mentions(before, ss.COLOR_WORDS[ss.COLORS[o["color"]]])]
            b = [o for o in s.objects if mentions(after, ss.SHAPE_WORDS[ss.SHAPES[o["shape"]]])
                 and mentions(after, ss.COLOR_WORDS[ss.COLORS[o["color"]]])]
            if len(a) == 1 and len(b) == 1 and a[0] is not b[0]:
                assert names[m.group(1)] in ss.relations(a[0], b[0]), caption
                checked += 1
    assert checked > 50


def test_tfrecords_match_the_generator(tmp_path):
    summary = ss.generate_tfrecords(str(tmp_path), num_train=6, num_val=3, image_size=32,
                                    seed=5, embed_fn=fake_embed, num_shards=2,
                                    text_encoder_handles={"preprocessor": "p", "encoder": "e"},
                                    progress=False, log=None)
    info = schema.read_dataset_info(str(tmp_path))
    assert info == summary.info
    assert info.source == "synthetic" and info.splits == {"train": 6, "val": 3}
    assert info.label_vocabulary == list(ss.CLASS_NAMES) and info.image_size == [32, 32]
    assert info.extra["shapes"] == list(ss.SHAPES) and info.extra["grid"] == 3
    assert info.extra["colors"] == list(ss.COLORS) and info.extra["sizes"] == list(ss.SIZES)
    assert (info.captions_per_image, info.max_tokens, info.embedding_dim) == (5, T, D)
    for split, num in (("train", 6), ("val", 3)):
        records = [schema.parse_example(r, max_tokens=T, embedding_dim=D, with_objects=True)
                   for p in schema.list_shards(str(tmp_path), split)
                   for r in tf.data.TFRecordDataset(p)]
        assert len(records) == num
        for i, rec in enumerate(records):
            scene = ss.make_scene(5, ss.SPLIT_INDEX_OFFSET[split] + i, 32)
            assert rec["filename"].numpy().decode() == ss.scene_filename(split, i)
            np.testing.assert_array_equal(tf.io.decode_png(rec["image"]).numpy(), scene.image)
            assert [c.decode() for c in rec["captions"].numpy()] == scene.captions
            assert rec["label"].numpy() == scene.label
            assert sorted(rec["labels"].numpy()) == sorted(
                {ss.class_id(o["shape"], o["color"]) for o in scene.objects})
            for f in schema.OBJECT_FIELDS:
                assert list(rec["objects/" + f].numpy()) == [o[f] for o in scene.objects]
            assert list(rec["states_position"].numpy()) == scene.states_position
            assert list(rec["states_size"].numpy()) == scene.states_size
            np.testing.assert_array_equal(rec["embeddings"].numpy(),
                                          fake_embed(scene.captions)[0])
    train0 = ss.make_scene(5, 0, 32)
    val0 = ss.make_scene(5, ss.SPLIT_INDEX_OFFSET["val"], 32)
    assert train0.captions != val0.captions


def test_coco_format_output(tmp_path):
    counts = ss.generate_coco(str(tmp_path), num_train=5, num_val=2, image_size=32, seed=2,
                              progress=False)
    assert counts == {"train": 5, "val": 2}
    caps = json.loads((tmp_path / "annotations" / "captions_train.json").read_text())
    inst = json.loads((tmp_path / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in inst["categories"]] == list(ss.SHAPES)
    assert [c["id"] for c in inst["categories"]] == [1, 2, 3, 4, 5]
    assert len(caps["images"]) == 5 and len(caps["annotations"]) == 25
    for im in caps["images"]:
        i = im["id"] - 1
        scene = ss.make_scene(2, i, 32)
        path = tmp_path / "images" / "train" / im["file_name"]
        np.testing.assert_array_equal(image_io.decode_rgb(path.read_bytes()), scene.image)
        assert [a["caption"] for a in caps["annotations"] if a["image_id"] == im["id"]] == (
            scene.captions)
        anns = [a for a in inst["annotations"] if a["image_id"] == im["id"]]
        assert [a["category_id"] - 1 for a in anns] == [o["shape"] for o in scene.objects]
        assert [a["bbox"] for a in anns] == scene.boxes
        assert all(0 < a["area"] <= a["bbox"][2] * a["bbox"][3] for a in anns)
    assert os.path.exists(tmp_path / "annotations" / "captions_val.json")


def test_command_line_in_process(tmp_path):
    fv = flags.FlagValues()
    ss.define_flags(fv)
    fv(["prog", "--output_dir", str(tmp_path / "tf"), "--num_train", "3", "--num_val", "2",
        "--image_size", "32", "--num_shards", "2", "--max_tokens", "4"])
    summary = ss.run(fv, make_embed_fn=lambda f: fake_embed)
    assert summary.info.splits == {"train": 3, "val": 2}
    fv = flags.FlagValues()
    ss.define_flags(fv)
    fv(["prog", "--output_dir", str(tmp_path / "coco"), "--num_train", "2", "--num_val", "0",
        "--image_size", "32", "--format", "coco"])
    assert ss.run(fv) == {"train": 2}
    assert sorted(os.listdir(tmp_path / "coco" / "images" / "train")) == [
        "train_0000000.png", "train_0000001.png"]


def test_help_lists_the_flags():
    fv = flags.FlagValues()
    ss.define_flags(fv)
    text = fv.module_help(ss)
    for flag in ("--output_dir", "--num_train", "--num_val", "--format", "--text_encoder",
                 "--text_preprocessor", "--max_tokens", "--num_shards", "--seed",
                 "--image_size", "--[no]overwrite"):
        assert flag in text


# Words a counterfactual may change: attribute words, and the articles and prepositions of the
# position phrases around them ("in the center" -> "at the top left").
_ATTRIBUTE_WORDS = (
    {w for c in ss.COLORS for p in ss.COLOR_WORDS[c] for w in re.split(r"[ -]", p)}
    | {w for s in ss.SHAPES for p in ss.SHAPE_WORDS[s] for w in re.split(r"[ -]", p)}
    | {w for s in ss.SIZES for w in ss.SIZE_WORDS[s]} | POSITION_WORDS
    | {"above", "over", "higher", "than", "below", "under", "beneath"})
_FRAME_WORDS = {"a", "an", "the", "in", "at", "on", "near", "of", "to", "corner", "side", "edge",
                "part", "image", "picture", "size"}


def _words(text: str) -> list[str]:
    return re.split(r"[ -]+", text.replace(",", ""))


def test_counterfactual_captions_differ_from_their_caption_in_attribute_words_only(scenes):
    import difflib
    kinds = set()
    for s in scenes:
        assert len(s.counterfactuals) == len(s.captions)
        for caption, counterfactual in zip(s.captions, s.counterfactuals):
            assert counterfactual != caption
            old, new = _words(caption), _words(counterfactual)
            changed_old, changed_new = [], []
            for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new).get_opcodes():
                if op != "equal":
                    changed_old += old[i1:i2]
                    changed_new += new[j1:j2]
            changed = set(changed_old) | set(changed_new)
            assert changed & _ATTRIBUTE_WORDS, (caption, counterfactual)
            assert changed <= _ATTRIBUTE_WORDS | _FRAME_WORDS, (caption, counterfactual)
            for kind, vocabulary in (
                    ("color", {w for c in ss.COLORS for p in ss.COLOR_WORDS[c]
                               for w in re.split(r"[ -]", p)}),
                    ("shape", {w for s_ in ss.SHAPES for p in ss.SHAPE_WORDS[s_]
                               for w in re.split(r"[ -]", p)} - {"shape"}),
                    ("size", {w for z in ss.SIZES for w in ss.SIZE_WORDS[z]})):
                if set(changed_new) & vocabulary:
                    kinds.add(kind)
            if set(changed_new) & (POSITION_WORDS | {"above", "over", "below", "under"}):
                kinds.add("place")
    assert kinds == set(ss.COUNTERFACTUAL_KINDS)


def test_counterfactual_of_a_lone_object_names_another_place_shape_colour_or_size():
    checked = 0
    for i in range(100):
        s = ss.make_scene(2, i, 32)
        if len(s.objects) != 1:
            continue
        o = s.objects[0]
        truth = {"color": ss.COLOR_WORDS[ss.COLORS[o["color"]]],
                 "shape": ss.SHAPE_WORDS[ss.SHAPES[o["shape"]]],
                 "size": ss.SIZE_WORDS[ss.SIZES[o["size"]]]}
        for caption, counterfactual, with_size, with_position in zip(
                s.captions, s.counterfactuals, s.states_size, s.states_position):
            wrong = [name for name, words in truth.items()
                     if (name != "size" or with_size) and not mentions(counterfactual, words)]
            if with_position and not wrong:
                # Only the place changed: other position words, or the same in another order
                # ("right in the middle" -> "in the middle right").
                places = [[w for w in _words(text) if w in POSITION_WORDS]
                          for text in (caption, counterfactual)]
                wrong = ["place"] if places[0] != places[1] else []
            assert len(wrong) >= 1, (caption, counterfactual, o)
            checked += 1
    assert checked > 100


def _text_embed(captions):
    """A fake encoder whose output is a function of the whole caption: [N, T, D], [N]."""
    import zlib
    embeddings = np.stack([np.random.default_rng(zlib.crc32(c.encode())).normal(size=[T, D])
                           for c in captions]).astype(np.float32)
    return embeddings, np.full([len(captions)], 3, np.int32)


def test_tfrecords_with_counterfactuals_and_the_pipeline_reads_them(tmp_path):
    from xmcgan_tf.data import input_pipeline
    from xmcgan_tf.data import sentence_embedding

    ss.generate_tfrecords(str(tmp_path), num_train=8, num_val=0, image_size=32, seed=5,
                          embed_fn=_text_embed, num_shards=2, counterfactuals=True,
                          text_encoder_handles={"preprocessor": "p", "encoder": "e"},
                          progress=False, log=None)
    info = schema.read_dataset_info(str(tmp_path))
    assert info.extra[schema.HAS_COUNTERFACTUALS] is True
    scenes = [ss.make_scene(5, i, 32) for i in range(8)]
    records = [schema.parse_example(r, max_tokens=T, embedding_dim=D, with_counterfactuals=True)
               for p in schema.list_shards(str(tmp_path), "train")
               for r in tf.data.TFRecordDataset(p)]
    for rec, scene in zip(records, scenes):
        assert [c.decode() for c in rec["captions"].numpy()] == scene.captions
        assert [c.decode() for c in rec["counterfactual_captions"].numpy()] == \
            scene.counterfactuals
        np.testing.assert_array_equal(rec["counterfactual_embeddings"].numpy(),
                                      _text_embed(scene.counterfactuals)[0])
        np.testing.assert_array_equal(rec["embeddings"].numpy(), _text_embed(scene.captions)[0])

    counterfactual_of = {c: f for s in scenes for c, f in zip(s.captions, s.counterfactuals)}
    dataset = input_pipeline.make_dataset(str(tmp_path), "train", batch_size=4, training=True,
                                          max_tokens=T, embedding_dim=D, image_size=32,
                                          counterfactuals=True, random_flip=False)
    for batch in dataset.take(4):
        for caption, got in zip(batch["caption"].numpy(),
                                batch[input_pipeline.COUNTERFACTUAL_SENTENCE].numpy()):
            words = _text_embed([counterfactual_of[caption.decode()]])[0]
            want = sentence_embedding.sentence_embedding(tf.constant(words[0]), 3, "official")
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_pipeline_refuses_counterfactuals_a_dataset_lacks(tmp_path):
    from xmcgan_tf.data import input_pipeline

    ss.generate_tfrecords(str(tmp_path), num_train=4, num_val=0, image_size=32, seed=5,
                          embed_fn=fake_embed, num_shards=1,
                          text_encoder_handles={"preprocessor": "p", "encoder": "e"},
                          progress=False, log=None)
    with pytest.raises(schema.DatasetError, match="no counterfactual captions"):
        input_pipeline.make_dataset(str(tmp_path), "train", batch_size=2, training=True,
                                    max_tokens=T, embedding_dim=D, image_size=32,
                                    counterfactuals=True)
