"""Tests of data_tools.dataset_writer: sharding, resume, bad-input accounting, dataset_info."""

import dataclasses
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data_tools import dataset_writer
from data_tools import image_io
from xmcgan_tf import files
from xmcgan_tf.data import schema

T, D = 5, 3


def fake_vectors(caption: str) -> tuple[np.ndarray, int]:
    """[T, D] float32 determined by the caption text, and its token count."""
    seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(caption)) % 997
    values = (seed + np.arange(T * D, dtype=np.float32).reshape(T, D)) / 1000.0
    return values.astype(np.float32), min(len(caption.split()) + 2, T)


class FakeEmbed:
    """Deterministic embed_fn that records every call."""

    def __init__(self, fail_after: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_after = fail_after

    def __call__(self, captions):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append(list(captions))
        vectors = [fake_vectors(c) for c in captions]
        return (np.stack([v for v, _ in vectors]),
                np.array([n for _, n in vectors], np.int32))

    @property
    def captions(self):
        return [c for call in self.calls for c in call]


def png(value: int, size: int = 4) -> bytes:
    return image_io.encode_png(np.full((size, size, 3), value, np.uint8))


def make_items(n: int, prefix: str = "img") -> list:
    return [dataset_writer.Item(filename=f"{prefix}_{i:03d}.png",
                                captions=[f"caption {j} of image {i}" for j in range(1 + i % 3)],
                                image_bytes=png(i), label=i % 4, labels=[i % 4, 7])
            for i in range(n)]


def write(output_dir, splits, embed=None, **kw):
    kw.setdefault("num_shards", 3)
    return dataset_writer.write_dataset(
        str(output_dir), splits, embed_fn=embed or FakeEmbed(), source="test",
        text_encoder_handles={"preprocessor": "pre", "encoder": "enc"},
        label_vocabulary=[f"c{i}" for i in range(8)], caption_batch_size=4, num_workers=2,
        progress=False, log=None, **kw)


def read_split(data_dir, split, with_objects=False):
    records = []
    for path in schema.list_shards(str(data_dir), split):
        for raw in tf.data.TFRecordDataset(path):
            ex = schema.parse_example(raw, max_tokens=T, embedding_dim=D,
                                      with_objects=with_objects)
            rec = {k: v.numpy() for k, v in ex.items()}
            rec["shard"] = os.path.basename(path)
            records.append(rec)
    return records


def test_records_round_trip_and_dataset_info(tmp_path):
    items = {"train": make_items(7), "val": make_items(2, "v")}
    summary = write(tmp_path, items)
    info = schema.read_dataset_info(str(tmp_path))
    assert info.splits == {"train": 7, "val": 2}
    assert (info.captions_per_image, info.max_tokens, info.embedding_dim) == (3, T, D)
    assert info.num_shards == {"train": 3, "val": 2}
    assert info.source == "test" and info.label_vocabulary[3] == "c3"
    # Local handles are recorded absolute, so the dataset's readers may run from anywhere.
    assert info.text_encoder == {"preprocessor": os.path.abspath("pre"),
                                 "encoder": os.path.abspath("enc")}
    assert summary.info == info
    recs = read_split(tmp_path, "train")
    assert [r["filename"].decode() for r in recs] == [it.filename for it in items["train"]]
    for rec, item in zip(recs, items["train"]):
        captions = [c.decode() for c in rec["captions"]]
        assert captions == list(item.captions)
        expected = [fake_vectors(c) for c in captions]
        np.testing.assert_array_equal(rec["embeddings"], np.stack([v for v, _ in expected]))
        np.testing.assert_array_equal(rec["num_tokens"], [n for _, n in expected])
        assert rec["label"] == item.label and list(rec["labels"]) == list(item.labels)
        assert rec["image"] == item.image_bytes  # RGB PNG stored byte for byte


def test_items_are_assigned_to_contiguous_shards(tmp_path):
    write(tmp_path, {"train": make_items(10)}, num_shards=4)
    recs = read_split(tmp_path, "train")
    for k, (start, end) in enumerate(dataset_writer.shard_bounds(10, 4)):
        names = [r["filename"].decode() for r in recs
                 if r["shard"] == schema.shard_name("train", k, 4)]
        assert names == [f"img_{i:03d}.png" for i in range(start, end)]
    assert dataset_writer.shard_bounds(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]


def test_fewer_items_than_shards(tmp_path):
    summary = write(tmp_path, {"train": make_items(2)}, num_shards=5)
    assert summary.info.num_shards == {"train": 2}
    assert len(schema.list_shards(str(tmp_path), "train")) == 2


def test_objects_and_caption_states_are_stored(tmp_path):
    item = dataset_writer.Item(
        filename="s.png", captions=["a red circle", "", "a big red circle on the left"],
        image_bytes=png(9), label=3, objects={f: [1, 2] for f in schema.OBJECT_FIELDS},
        states_position=[0, 1, 1], states_size=[0, 0, 1])
    summary = write(tmp_path, {"train": [item]})
    (rec,) = read_split(tmp_path, "train", with_objects=True)
    # The empty caption is dropped together with its flags.
    assert [c.decode() for c in rec["captions"]] == ["a red circle", "a big red circle on the left"]
    assert list(rec["states_position"]) == [0, 1] and list(rec["states_size"]) == [0, 1]
    assert list(rec["objects/shape"]) == [1, 2]
    assert summary.splits["train"].files(dataset_writer.EMPTY_CAPTION) == ["s.png"]


def test_counterfactual_captions_are_embedded_and_stored_beside_their_captions(tmp_path):
    item = dataset_writer.Item(
        filename="s.png", captions=["a red circle", "", "a big red circle"], image_bytes=png(9),
        counterfactual_captions=["a red star", "a blue circle", "a small red circle"])
    write(tmp_path, {"train": [item]})
    path = schema.list_shards(str(tmp_path), "train")[0]
    (raw,) = list(tf.data.TFRecordDataset(path))
    rec = schema.parse_example(raw, max_tokens=T, embedding_dim=D, with_counterfactuals=True)
    # The empty caption's counterfactual is dropped with it; each is embedded as a caption.
    assert [c.decode() for c in rec["counterfactual_captions"].numpy()] == [
        "a red star", "a small red circle"]
    want = [fake_vectors(c) for c in ("a red star", "a small red circle")]
    np.testing.assert_array_equal(rec["counterfactual_embeddings"].numpy(),
                                  np.stack([v for v, _ in want]))
    assert list(rec["counterfactual_num_tokens"].numpy()) == [n for _, n in want]
    with pytest.raises(ValueError, match="2 counterfactual_captions values for 1 captions"):
        dataset_writer.Item(filename="x", captions=["c"], image_bytes=b"",
                            counterfactual_captions=["d", "e"])


def test_resume_rewrites_only_missing_shards(tmp_path):
    items = {"train": make_items(9)}
    write(tmp_path, items)
    shards = [os.path.join(tmp_path, schema.shard_name("train", k, 3)) for k in range(3)]
    original = [open(p, "rb").read() for p in shards]
    mtimes = [os.stat(p).st_mtime_ns for p in shards]
    os.remove(shards[1])
    with open(shards[2] + files.TMP_SUFFIX, "wb") as f:
        f.write(b"half-written")  # leftover of an interrupted run, next to a complete shard
    embed = FakeEmbed()
    summary = write(tmp_path, items, embed=embed)
    split = summary.splits["train"]
    assert (split.shards_written, split.shards_skipped, split.written) == (1, 2, 9)
    start, end = dataset_writer.shard_bounds(9, 3)[1]
    expected = [c for it in items["train"][start:end] for c in it.captions]
    assert embed.captions == expected  # only the missing shard was embedded
    assert [open(p, "rb").read() for p in shards] == original
    assert os.stat(shards[0]).st_mtime_ns == mtimes[0]
    assert os.stat(shards[2]).st_mtime_ns == mtimes[2]
    assert schema.read_dataset_info(str(tmp_path)).splits == {"train": 9}


def test_a_rerun_writes_again_the_shards_whose_images_were_missing(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    items = []
    for i in range(6):
        items.append(dataset_writer.Item(filename=f"img_{i}.png",
                                         captions=[f"caption of image {i}"],
                                         image_path=str(images / f"img_{i}.png")))
        if i >= 2:  # images 0 and 1 (shard 0 of 3) are missing in the first run
            (images / f"img_{i}.png").write_bytes(png(i))
    output = tmp_path / "data"
    first = write(output, {"train": items})
    assert first.splits["train"].written == 4 and first.splits["train"].skipped == 2
    for i in range(2):  # restored
        (images / f"img_{i}.png").write_bytes(png(i))
    second = write(output, {"train": items})
    split = second.splits["train"]
    assert (split.shards_written, split.shards_skipped, split.written) == (1, 2, 6)
    assert [r["filename"].decode() for r in read_split(output, "train")] == [
        f"img_{i}.png" for i in range(6)]
    third = write(output, {"train": items})  # now complete: nothing is written again
    assert third.splits["train"].shards_written == 0


def test_interrupted_run_leaves_no_partial_shard_and_resumes(tmp_path):
    items = {"train": make_items(9)}
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path, items, embed=FakeEmbed(fail_after=2))
    names = sorted(os.listdir(tmp_path))
    assert schema.DATASET_INFO_FILE not in names
    complete = [n for n in names if schema.parse_shard_name(n)]
    assert complete and len(complete) < 3
    assert any(n.endswith(files.TMP_SUFFIX) for n in names)
    summary = write(tmp_path, items)
    assert summary.splits["train"].shards_skipped == len(complete)
    recs = read_split(tmp_path, "train")
    assert [r["filename"].decode() for r in recs] == [it.filename for it in items["train"]]
    reference = tmp_path / "reference"
    write(reference, items)
    for k in range(3):
        name = schema.shard_name("train", k, 3)
        assert (tmp_path / name).read_bytes() == (reference / name).read_bytes()


def test_rerun_with_other_settings_or_shard_count_is_refused(tmp_path):
    items = {"train": make_items(6)}
    write(tmp_path, items)
    with pytest.raises(schema.DatasetError, match="other settings"):
        write(tmp_path, items, settings={"max_tokens": 99})
    with pytest.raises(schema.DatasetError, match="another shard count"):
        write(tmp_path, items, num_shards=2)
    summary = write(tmp_path, items, num_shards=2, overwrite=True)
    assert summary.splits["train"].shards_written == 2
    assert len(schema.list_shards(str(tmp_path), "train")) == 2


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_bad_inputs_are_counted_and_named(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "gray.jpg").write_bytes(_encoded(Image.new("L", (5, 4), 90), "JPEG"))
    (src / "cmyk.jpg").write_bytes(_encoded(Image.new("CMYK", (5, 4), (0, 0, 255, 0)), "JPEG"))
    (src / "alpha.png").write_bytes(_encoded(Image.new("RGBA", (5, 4), (1, 2, 3, 0)), "PNG"))
    (src / "palette.png").write_bytes(_encoded(Image.new("P", (5, 4), 3), "PNG"))
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (src / "good.png").write_bytes(png(50))
    (src / "nocap.png").write_bytes(png(60))

    def item(name, captions=("a caption",)):
        return dataset_writer.Item(filename=name, captions=list(captions),
                                   image_path=str(src / name))

    items = [item("gray.jpg"), item("cmyk.jpg"), item("alpha.png"), item("palette.png"),
             item("corrupt.jpg"), item("missing.jpg"), item("good.png", ["ok", "  ", ""]),
             item("nocap.png", ["", " "]), item("nocap2.png", [])]
    summary = dataset_writer.write_dataset(
        str(tmp_path / "out"), {"train": items}, embed_fn=FakeEmbed(), num_shards=2,
        source="test", text_encoder_handles={}, progress=False)
    split = summary.splits["train"]
    assert split.written == 5 and split.items == 9 and split.skipped == 4
    assert split.files(dataset_writer.MISSING_IMAGE) == ["missing.jpg"]
    assert split.files(dataset_writer.UNREADABLE_IMAGE) == ["corrupt.jpg"]
    assert split.files(dataset_writer.NO_CAPTIONS) == ["nocap.png", "nocap2.png"]
    assert split.files(dataset_writer.EMPTY_CAPTION) == ["good.png", "good.png", "nocap.png",
                                                         "nocap.png"]
    assert sorted(split.files(dataset_writer.CONVERTED)) == ["alpha.png", "cmyk.jpg",
                                                             "gray.jpg", "palette.png"]
    assert dataset_writer.count_problems(summary)["train"][dataset_writer.EMPTY_CAPTION] == 4
    printed = capsys.readouterr().out
    for name in ("missing.jpg", "corrupt.jpg", "nocap2.png", "cmyk.jpg", "CMYK", "4 skipped"):
        assert name in printed
    recs = read_split(tmp_path / "out", "train")
    assert [r["filename"].decode() for r in recs] == ["gray.jpg", "cmyk.jpg", "alpha.png",
                                                      "palette.png", "good.png"]
    for rec in recs:
        assert tf.io.decode_image(rec["image"]).shape[-1] == 3
        with Image.open(io.BytesIO(rec["image"])) as img:
            assert img.mode == "RGB"
    alpha = tf.io.decode_image(recs[2]["image"]).numpy()
    assert (alpha == 255).all()  # fully transparent -> white
    # A re-run keeps the shard without missing or unreadable images, tries the other one
    # again, and reports the same problems.
    again = dataset_writer.write_dataset(
        str(tmp_path / "out"), {"train": items}, embed_fn=FakeEmbed(), num_shards=2,
        source="test", text_encoder_handles={}, progress=False, log=None)
    assert (again.splits["train"].shards_skipped, again.splits["train"].shards_written) == (1, 1)
    assert (sorted(map(dataclasses.astuple, again.splits["train"].problems))
            == sorted(map(dataclasses.astuple, split.problems)))


def test_everything_failing_raises(tmp_path):
    items = [dataset_writer.Item(filename=f"m{i}.jpg", captions=["x"],
                                 image_path=str(tmp_path / f"m{i}.jpg")) for i in range(3)]
    with pytest.raises(schema.DatasetError, match=r"(?s)none of the 3 images.*m0\.jpg"):
        write(tmp_path / "out", {"train": items})
    assert not os.path.exists(tmp_path / "out" / schema.DATASET_INFO_FILE)


def test_invalid_arguments_raise(tmp_path):
    with pytest.raises(schema.DatasetError, match="no items"):
        write(tmp_path, {"train": []})
    with pytest.raises(ValueError, match="exactly one"):
        dataset_writer.Item(filename="x", captions=["c"])
    with pytest.raises(ValueError, match="2 states_size values for 1 captions"):
        dataset_writer.Item(filename="x", captions=["c"], image_bytes=b"", states_size=[1, 0])
    bad = lambda captions: (np.zeros((len(captions), T), np.float32), np.zeros(len(captions)))
    with pytest.raises(ValueError, match=r"expected \[N, T, D\]"):
        write(tmp_path / "b", {"train": make_items(2)}, embed=bad)


def test_generator_input_is_materialised(tmp_path):
    summary = write(tmp_path, {"train": (it for it in make_items(4))}, num_shards=2)
    assert summary.info.splits == {"train": 4}
    stats = json.loads((tmp_path / dataset_writer.STATS_DIR /
                        (schema.shard_name("train", 0, 2) + ".json")).read_text())
    assert stats["records"] == 2 and stats["items"] == [0, 2]


def test_real_offline_text_encoder(tmp_path, offline_text_encoder_dir):
    embed = dataset_writer.make_embed_fn(os.path.join(offline_text_encoder_dir, "preprocess"),
                                         os.path.join(offline_text_encoder_dir, "encoder"),
                                         max_tokens=8, batch_size=2)
    captions = ["a small red circle", "a big blue square in the top left corner of the image",
                "two stars"]
    emb, num_tokens = embed(captions)
    assert emb.shape[:2] == (3, 8) and emb.dtype == np.float32
    dim = emb.shape[2]
    np.testing.assert_array_equal(num_tokens, [6, 8, 4])  # [CLS] words [SEP], truncated to T
    items = [dataset_writer.Item(filename=f"i{i}.png", captions=[c], image_bytes=png(i))
             for i, c in enumerate(captions)]
    summary = dataset_writer.write_dataset(
        str(tmp_path), {"train": items}, embed_fn=embed, num_shards=1, source="test",
        text_encoder_handles={"preprocessor": "p", "encoder": "e"}, progress=False, log=None)
    assert (summary.info.max_tokens, summary.info.embedding_dim) == (8, dim)
    (path,) = schema.list_shards(str(tmp_path), "train")
    for i, raw in enumerate(tf.data.TFRecordDataset(path)):
        rec = schema.parse_example(raw, max_tokens=8, embedding_dim=dim)
        np.testing.assert_allclose(rec["embeddings"].numpy()[0], emb[i], rtol=1e-5, atol=1e-5)
        assert rec["num_tokens"].numpy()[0] == num_tokens[i]
