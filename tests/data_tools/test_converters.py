"""Tests of the COCO, CUB and Localized Narratives converters on small on-disk fixtures."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from data_tools import coco_to_tfrecord
from data_tools import cub_to_tfrecord
from data_tools import dataset_writer
from data_tools import image_io
from data_tools import ln_to_tfrecord
from data_tools import synthetic_scenes
from xmcgan_tf.data import schema

T, D = 3, 2
WRITER = dict(num_shards=2, text_encoder_handles={"preprocessor": "p", "encoder": "e"},
              progress=False, log=None)


def fake_embed(captions):
    emb = np.stack([np.full((T, D), len(c) % 7, np.float32) for c in captions])
    return emb, np.array([min(len(c.split()) + 2, T) for c in captions], np.int32)


def read_records(data_dir, split):
    return [{k: v.numpy() for k, v in
             schema.parse_example(raw, max_tokens=T, embedding_dim=D).items()}
            for path in schema.list_shards(str(data_dir), split)
            for raw in tf.data.TFRecordDataset(path)]


def save_image(path, size=(12, 10), mode="RGB", color=(200, 30, 40)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path, quality=95)


def parse_cli(module, argv):
    fv = flags.FlagValues()
    module.define_flags(fv)
    fv(["prog"] + argv)
    return fv


# ---------------------------------------------------------------------------------------------
# COCO


@pytest.fixture(scope="module")
def synthetic_coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_coco")
    synthetic_scenes.generate_coco(str(root), num_train=8, num_val=4, image_size=32, seed=3,
                                   progress=False)
    return root


def test_coco_converter_on_the_synthetic_coco_folder(synthetic_coco, tmp_path):
    summary = coco_to_tfrecord.convert(
        str(synthetic_coco), str(tmp_path), splits={"train": "train", "val": "val"},
        images_subdir="images", embed_fn=fake_embed, **WRITER)
    info = schema.read_dataset_info(str(tmp_path))
    assert info.splits == {"train": 8, "val": 4} and info.source == "coco"
    assert info.label_vocabulary == list(synthetic_scenes.SHAPES)
    assert info.extra["category_ids"] == [1, 2, 3, 4, 5]
    assert summary.splits["train"].problems == []
    for split in ("train", "val"):
        caps = json.loads((synthetic_coco / "annotations" / f"captions_{split}.json").read_text())
        inst = json.loads((synthetic_coco / "annotations" /
                           f"instances_{split}.json").read_text())
        records = read_records(tmp_path, split)
        assert len(records) == len(caps["images"])
        for rec, im in zip(records, sorted(caps["images"], key=lambda im: im["id"])):
            assert rec["filename"].decode() == im["file_name"]
            assert [c.decode() for c in rec["captions"]] == [
                a["caption"] for a in caps["annotations"] if a["image_id"] == im["id"]]
            anns = [a for a in inst["annotations"] if a["image_id"] == im["id"]]
            assert list(rec["labels"]) == sorted({a["category_id"] - 1 for a in anns})
            largest = max(anns, key=lambda a: a["area"])
            assert rec["label"] == largest["category_id"] - 1
            assert rec["image"] == (synthetic_coco / "images" / split /
                                    im["file_name"]).read_bytes()


def write_coco_2014(root):
    """A COCO-2014-style folder: category id gaps, an image without captions, one without
    instances, a grayscale JPEG and a caption referring to a missing file."""
    names = ["COCO_val2014_000000000001.jpg", "COCO_val2014_000000000002.jpg",
             "COCO_val2014_000000000003.jpg", "COCO_val2014_000000000004.jpg"]
    save_image(str(root / "val2014" / names[0]))
    save_image(str(root / "val2014" / names[1]), mode="L")
    save_image(str(root / "val2014" / names[2]))
    images = [{"id": i + 1, "file_name": n, "width": 12, "height": 10}
              for i, n in enumerate(names)]
    captions = {"images": images, "annotations": [
        {"id": 10, "image_id": 1, "caption": "A man riding a horse."},
        {"id": 11, "image_id": 1, "caption": "A person on a brown horse"},
        {"id": 12, "image_id": 2, "caption": "A black and white photo of a car."},
        {"id": 13, "image_id": 4, "caption": "Nobody has this file."}]}
    instances = {"images": images, "categories": [
        {"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "area": 30.0, "bbox": [0, 0, 5, 6]},
            {"id": 2, "image_id": 1, "category_id": 90, "area": 50.0, "bbox": [0, 0, 5, 10]},
            {"id": 3, "image_id": 1, "category_id": 1, "area": 10.0, "bbox": [0, 0, 2, 5]},
            {"id": 4, "image_id": 3, "category_id": 3, "area": 5.0, "bbox": [0, 0, 1, 5]}]}
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "captions_val2014.json").write_text(json.dumps(captions))
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(instances))


def test_coco_2014_labels_and_problems(tmp_path):
    write_coco_2014(tmp_path / "coco")
    summary = coco_to_tfrecord.convert(str(tmp_path / "coco"), str(tmp_path / "out"),
                                       splits={"val": "val2014"}, embed_fn=fake_embed,
                                       **WRITER)
    info = schema.read_dataset_info(str(tmp_path / "out"))
    assert info.label_vocabulary == ["person", "car", "toothbrush"]  # by COCO id 1, 3, 90
    assert info.extra["category_ids"] == [1, 3, 90]
    split = summary.splits["val"]
    assert split.files(dataset_writer.NO_CAPTIONS) == ["COCO_val2014_000000000003.jpg"]
    assert split.files(dataset_writer.MISSING_IMAGE) == ["COCO_val2014_000000000004.jpg"]
    assert split.files(dataset_writer.CONVERTED) == ["COCO_val2014_000000000002.jpg"]
    recs = read_records(tmp_path / "out", "val")
    assert [r["filename"].decode()[-5:] for r in recs] == ["1.jpg", "2.jpg"]
    assert list(recs[0]["labels"]) == [0, 2] and recs[0]["label"] == 2  # toothbrush, largest
    assert list(recs[1]["labels"]) == [] and recs[1]["label"] == schema.NO_LABEL
    assert tf.io.decode_jpeg(recs[1]["image"]).shape == (10, 12, 3)


def test_coco_without_instances(tmp_path):
    write_coco_2014(tmp_path / "coco")
    coco_to_tfrecord.convert(str(tmp_path / "coco"), str(tmp_path / "out"),
                             splits={"val": "val2014"}, embed_fn=fake_embed,
                             use_instances=False, max_captions=1, **WRITER)
    recs = read_records(tmp_path / "out", "val")
    assert all(r["label"] == -1 and len(r["labels"]) == 0 for r in recs)
    assert [len(r["captions"]) for r in recs] == [1, 1]


def test_coco_bad_json_names_file_and_line(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "captions_bad.json").write_text('{\n  "images": [,\n]}')
    with pytest.raises(schema.DatasetError, match=r"captions_bad\.json:2:"):
        coco_to_tfrecord.load_split(str(tmp_path), "bad")
    (tmp_path / "annotations" / "captions_nokey.json").write_text('{"images": []}')
    with pytest.raises(schema.DatasetError, match="captions_nokey.json: missing the list"):
        coco_to_tfrecord.load_split(str(tmp_path), "nokey")
    with pytest.raises(FileNotFoundError, match="captions_absent.json"):
        coco_to_tfrecord.load_split(str(tmp_path), "absent")


def test_coco_command_line(synthetic_coco, tmp_path):
    fv = parse_cli(coco_to_tfrecord, [
        "--coco_dir", str(synthetic_coco), "--output_dir", str(tmp_path), "--splits",
        "train=train", "--images_subdir", "images", "--max_tokens", str(T), "--num_shards", "3"])
    assert fv.text_encoder.startswith("https://tfhub.dev/")
    summary = coco_to_tfrecord.run(fv, make_embed_fn=lambda f: fake_embed)
    assert summary.info.splits == {"train": 8} and summary.info.num_shards == {"train": 3}
    assert "--coco_dir" in fv.module_help(coco_to_tfrecord)
    assert coco_to_tfrecord.parse_splits("train=train2017, val=val2017") == {
        "train": "train2017", "val": "val2017"}
    with pytest.raises(ValueError, match="OUTPUT_SPLIT=COCO_NAME"):
        coco_to_tfrecord.parse_splits("train2017")


# ---------------------------------------------------------------------------------------------
# CUB


CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
CUB_IMAGES = [  # (image id, class id, is_train, file, mode)
    (1, 1, 1, "Black_Footed_Albatross_0001_796111.jpg", "RGB"),
    (2, 1, 0, "Black_Footed_Albatross_0002_55.jpg", "L"),
    (3, 2, 1, "Laysan_Albatross_0001_545.jpg", "RGB"),
    (4, 2, 0, "Laysan_Albatross_0002_1027.jpg", "RGB"),
]


def write_cub(root):
    root.mkdir(parents=True)
    (root / "classes.txt").write_text(
        "".join(f"{i + 1} {c}\n" for i, c in enumerate(CUB_CLASSES)))
    rows = [(i, f"{CUB_CLASSES[c - 1]}/{f}", c, t) for i, c, t, f, _ in CUB_IMAGES]
    (root / "images.txt").write_text("".join(f"{i} {p}\n" for i, p, _, _ in rows))
    (root / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, _, c, _ in rows))
    (root / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, _, t in rows))
    (root / "bounding_boxes.txt").write_text(
        "".join(f"{i} 10.0 8.0 {20.0 + i} 12.0\n" for i, _, _, _ in rows))
    for i, path, _, _ in rows:
        mode = CUB_IMAGES[i - 1][4]
        save_image(str(root / "images" / path), size=(60, 40), mode=mode,
                   color=(10 * i, 100, 50))
        text = root / "text" / (os.path.splitext(path)[0] + ".txt")
        text.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"bird {i} caption {j} with a white belly" for j in range(10)]
        if i == 3:
            lines[4] = "   "  # an empty caption
        text.write_text("\n".join(lines) + "\n")


def test_cub_official_split(tmp_path):
    write_cub(tmp_path / "cub")
    summary = cub_to_tfrecord.convert(str(tmp_path / "cub"), str(tmp_path / "out"),
                                      embed_fn=fake_embed, **WRITER)
    info = schema.read_dataset_info(str(tmp_path / "out"))
    assert info.source == "cub" and info.label_vocabulary == CUB_CLASSES
    assert info.splits == {"train": 2, "val": 2} and info.captions_per_image == 10
    train = read_records(tmp_path / "out", "train")
    val = read_records(tmp_path / "out", "val")
    assert [r["filename"].decode() for r in train] == [
        f"{CUB_CLASSES[0]}/{CUB_IMAGES[0][3]}", f"{CUB_CLASSES[1]}/{CUB_IMAGES[2][3]}"]
    assert [r["label"] for r in train] == [0, 1] and [r["label"] for r in val] == [0, 1]
    assert [list(r["labels"]) for r in val] == [[0], [1]]
    assert [c.decode() for c in train[0]["captions"]] == [
        f"bird 1 caption {j} with a white belly" for j in range(10)]
    assert len(train[1]["captions"]) == 9  # the blank line was dropped
    assert summary.splits["train"].files(dataset_writer.EMPTY_CAPTION) == [
        f"{CUB_CLASSES[1]}/{CUB_IMAGES[2][3]}"]
    assert summary.splits["val"].files(dataset_writer.CONVERTED) == [
        f"{CUB_CLASSES[0]}/{CUB_IMAGES[1][3]}"]
    assert tf.io.decode_jpeg(val[0]["image"]).shape == (40, 60, 3)


def test_cub_class_split_and_bbox_crop(tmp_path):
    write_cub(tmp_path / "cub")
    (tmp_path / "val_classes.txt").write_text(CUB_CLASSES[1] + "\n")
    cub_to_tfrecord.convert(str(tmp_path / "cub"), str(tmp_path / "out"), embed_fn=fake_embed,
                            split_mode="classes",
                            val_classes_file=str(tmp_path / "val_classes.txt"),
                            crop_bbox_scale=1.5, max_captions=3, **WRITER)
    train = read_records(tmp_path / "out", "train")
    val = read_records(tmp_path / "out", "val")
    assert [r["label"] for r in train] == [0, 0] and [r["label"] for r in val] == [1, 1]
    assert all(len(r["captions"]) == 3 for r in train + val)
    for rec, (image_id, *_rest) in zip(train, CUB_IMAGES[:2]):
        w = 20.0 + image_id  # box (10, 8, w, 12); square side 1.5 * w around its centre
        r = 1.5 * w / 2
        cx, cy = 10 + w / 2, 8 + 6
        left, top = max(round(cx - r), 0), max(round(cy - r), 0)
        right, bottom = min(round(cx + r), 60), min(round(cy + r), 40)
        assert tf.io.decode_jpeg(rec["image"]).shape == (bottom - top, right - left, 3)


def test_cub_parse_errors_name_file_and_line(tmp_path):
    write_cub(tmp_path / "cub")
    with open(tmp_path / "cub" / "images.txt", "a") as f:
        f.write("five not_an_id.jpg\n")
    with pytest.raises(schema.DatasetError, match=r"images\.txt:5: expected '<image_id> <path>'"):
        cub_to_tfrecord.load_cub(str(tmp_path / "cub"))
    write_cub(tmp_path / "cub2")
    bad = tmp_path / "cub2" / "text" / CUB_CLASSES[0] / (CUB_IMAGES[0][3][:-4] + ".txt")
    bad.write_bytes(b"fine caption\nsecond \xff\xfe caption\n")
    with pytest.raises(schema.DatasetError, match=rf"{bad.name}:2: caption file is not UTF-8"):
        cub_to_tfrecord.load_cub(str(tmp_path / "cub2"))
    with pytest.raises(FileNotFoundError, match="caption folder"):
        cub_to_tfrecord.load_cub(str(tmp_path / "cub2"), text_dir=str(tmp_path / "nope"))


def test_cub_command_line(tmp_path):
    write_cub(tmp_path / "cub")
    fv = parse_cli(cub_to_tfrecord, ["--cub_dir", str(tmp_path / "cub"), "--output_dir",
                                     str(tmp_path / "out"), "--max_tokens", str(T)])
    summary = cub_to_tfrecord.run(fv, make_embed_fn=lambda f: fake_embed)
    assert summary.info.splits == {"train": 2, "val": 2}
    assert "--split_mode" in fv.module_help(cub_to_tfrecord)


# ---------------------------------------------------------------------------------------------
# Localized Narratives


def write_ln(root):
    images = root / "val2017"
    for image_id in (139, 285):
        save_image(str(images / f"{image_id:012d}.jpg"), color=(image_id % 256, 10, 10))
    save_image(str(images / "000000000632.png"), mode="RGB")
    lines = [
        {"dataset_id": "mscoco_val2017", "image_id": "139", "annotator_id": 1,
         "caption": "In this image we can see a table.", "timed_caption": [], "traces": []},
        {"dataset_id": "mscoco_val2017", "image_id": "285", "annotator_id": 2,
         "caption": "This is a bear."},
        {"dataset_id": "mscoco_val2017", "image_id": "139", "annotator_id": 3,
         "caption": "A room with a television."},
        {"dataset_id": "mscoco_val2017", "image_id": "777", "annotator_id": 4,
         "caption": "An image that is not in the folder."},
        {"dataset_id": "mscoco_val2017", "image_id": "632", "annotator_id": 5, "caption": ""},
    ]
    path = root / "coco_val_localized_narratives.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path, images


def test_ln_groups_narratives_per_image(tmp_path):
    jsonl, images = write_ln(tmp_path)
    summary = ln_to_tfrecord.convert(str(tmp_path / "out"),
                                     splits={"val": (str(jsonl), str(images))},
                                     embed_fn=fake_embed, **WRITER)
    recs = read_records(tmp_path / "out", "val")
    assert [r["filename"].decode() for r in recs] == ["000000000139.jpg", "000000000285.jpg"]
    assert [c.decode() for c in recs[0]["captions"]] == [
        "In this image we can see a table.", "A room with a television."]
    assert all(r["label"] == -1 for r in recs)
    split = summary.splits["val"]
    assert split.files(dataset_writer.MISSING_IMAGE) == ["777.jpg"]
    assert split.files(dataset_writer.NO_CAPTIONS) == ["000000000632.png"]
    info = schema.read_dataset_info(str(tmp_path / "out"))
    assert info.source == "localized_narratives" and info.captions_per_image == 2
    assert recs[1]["image"] == (images / "000000000285.jpg").read_bytes()


def test_ln_filename_format_and_globs(tmp_path):
    jsonl, images = write_ln(tmp_path)
    items = ln_to_tfrecord.load_split(str(tmp_path / "*.jsonl"), str(images),
                                      image_filename_format="{image_id:0>12}.jpg",
                                      max_captions=1)
    assert [it.filename for it in items] == ["000000000139.jpg", "000000000285.jpg",
                                             "000000000777.jpg", "000000000632.jpg"]
    assert [len(it.captions) for it in items] == [1, 1, 1, 1]
    with pytest.raises(FileNotFoundError, match="no narrative file matches"):
        ln_to_tfrecord.load_split(str(tmp_path / "absent*.jsonl"), str(images))


def test_ln_bad_line_names_file_and_line(tmp_path):
    jsonl, images = write_ln(tmp_path)
    with open(jsonl, "a") as f:
        f.write('{"image_id": "1", "caption": "ok"}\n{"image_id": "2", "caption": \n')
    with pytest.raises(schema.DatasetError, match=rf"{jsonl.name}:7: not a JSON narrative"):
        ln_to_tfrecord.load_split(str(jsonl), str(images))
    other = tmp_path / "other.jsonl"
    other.write_text('{"image_id": "1", "caption": "ok"}\n{"image_id": "2"}\n')
    with pytest.raises(schema.DatasetError, match=r"other\.jsonl:2: a narrative needs"):
        ln_to_tfrecord.load_split(str(other), str(images))


def test_ln_command_line(tmp_path):
    jsonl, images = write_ln(tmp_path)
    fv = parse_cli(ln_to_tfrecord, ["--output_dir", str(tmp_path / "out"), "--val_jsonl",
                                    str(jsonl), "--val_image_dir", str(images), "--max_tokens",
                                    str(T)])
    assert ln_to_tfrecord.run(fv, make_embed_fn=lambda f: fake_embed).info.splits == {"val": 2}
    fv = parse_cli(ln_to_tfrecord, ["--output_dir", str(tmp_path / "o2"), "--val_jsonl",
                                    str(jsonl)])
    with pytest.raises(Exception, match="go together"):
        ln_to_tfrecord.run(fv, make_embed_fn=lambda f: fake_embed)
    assert fv.max_tokens == 64


def test_stored_images_decode_as_rgb(tmp_path):
    jsonl, images = write_ln(tmp_path)
    Image.new("CMYK", (12, 10), (0, 0, 0, 0)).save(images / "000000000285.jpg")
    ln_to_tfrecord.convert(str(tmp_path / "out"), splits={"val": (str(jsonl), str(images))},
                           embed_fn=fake_embed, **WRITER)
    for rec in read_records(tmp_path / "out", "val"):
        rgb = image_io.decode_rgb(rec["image"])
        assert rgb.shape == (10, 12, 3)
        np.testing.assert_array_equal(rgb, tf.io.decode_jpeg(rec["image"]).numpy())
