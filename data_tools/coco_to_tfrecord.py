r"""COCO captions (2014 / 2017) -> TFRecord shards (SPEC §1.1, §1.4).

Reads the files as distributed by cocodataset.org:

  COCO_DIR/annotations/captions_<name>.json    {"images": [{"id", "file_name", ...}],
                                                "annotations": [{"image_id", "caption"}]}
  COCO_DIR/annotations/instances_<name>.json   optional: {"annotations": [{"image_id",
                                                "category_id", "area", "bbox"}], "categories":
                                                [{"id", "name"}]}
  COCO_DIR/[IMAGES_SUBDIR/]<name>/<file_name>  the images

`image/labels` = the categories of the image's instances, mapped to contiguous ids
0..K-1 in the order of the COCO category ids (`label_vocabulary` = their names);
`image/label` = the category of the instance with the largest area (crowd regions included),
-1 for an image without instances or when no instances file is used.

  python -m data_tools.coco_to_tfrecord --coco_dir /data/coco --output_dir DIR \
      --splits train=train2014,val=val2014
  # the synthetic set in COCO format (python -m data_tools.synthetic_scenes --format coco):
  python -m data_tools.coco_to_tfrecord --coco_dir SYN --splits train=train,val=val \
      --images_subdir images --output_dir DIR --max_tokens 24
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Callable, Mapping, Sequence

from absl import app
from absl import flags

from data_tools import dataset_writer
from xmcgan_tf.data import schema


@dataclasses.dataclass
class Categories:
    """Contiguous category vocabulary: COCO id -> index, and the names by index."""

    ids: list[int]
    names: list[str]

    def index(self) -> dict[int, int]:
        return {cid: i for i, cid in enumerate(self.ids)}


def load_json(path: str) -> dict:
    """Reads a JSON object; a file that does not parse raises DatasetError naming file and line."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise schema.DatasetError(f"{path}:{line}: not UTF-8 text ({e.reason})") from e
    except json.JSONDecodeError as e:
        raise schema.DatasetError(
            f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from e
    if not isinstance(data, dict):
        raise schema.DatasetError(f"{path}: expected a JSON object at the top level, got "
                                  f"{type(data).__name__}")
    return data


def _entries(data: dict, key: str, path: str, fields: Sequence[str]) -> list[dict]:
    entries = data.get(key)
    if not isinstance(entries, list):
        raise schema.DatasetError(f"{path}: missing the list {key!r}")
    for i, entry in enumerate(entries):
        missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise schema.DatasetError(f"{path}: {key}[{i}] lacks {missing}: {entry!r}"[:400])
    return entries


def read_categories(instances_path: str) -> Categories:
    """The categories of an instances file, sorted by COCO id."""
    data = load_json(instances_path)
    cats = sorted(_entries(data, "categories", instances_path, ("id", "name")),
                  key=lambda c: c["id"])
    return Categories(ids=[int(c["id"]) for c in cats], names=[str(c["name"]) for c in cats])


def load_split(coco_dir: str, name: str, *, images_subdir: str = "",
               categories: Categories | None = None,
               max_captions: int = 0) -> list[dataset_writer.Item]:
    """Items of one COCO split, sorted by image id.

    Args:
      coco_dir: COCO root holding annotations/ and the image folders.
      name: COCO split name ("train2014", "val2017", ...).
      images_subdir: folder between coco_dir and the split's image folder ("" for COCO).
      categories: the category vocabulary; None to ignore instances (labels empty, label -1).
      max_captions: keep at most this many captions per image (0: all).

    Returns:
      One Item per image listed in the captions file (images without captions included; the
      writer reports and skips them).
    """
    captions_path = os.path.join(coco_dir, "annotations", f"captions_{name}.json")
    data = load_json(captions_path)
    images = _entries(data, "images", captions_path, ("id", "file_name"))
    annotations = _entries(data, "annotations", captions_path, ("image_id", "caption"))
    by_image = collections.defaultdict(list)
    known = {int(im["id"]) for im in images}
    for i, ann in enumerate(annotations):
        image_id = int(ann["image_id"])
        if image_id not in known:
            raise schema.DatasetError(f"{captions_path}: annotations[{i}] refers to image "
                                      f"{image_id}, which is not in its images list")
        by_image[image_id].append(str(ann["caption"]))
    labels = collections.defaultdict(set)
    largest: dict[int, tuple[float, int]] = {}
    if categories is not None:
        instances_path = os.path.join(coco_dir, "annotations", f"instances_{name}.json")
        inst = load_json(instances_path)
        index = categories.index()
        found = read_categories(instances_path)
        if found.ids != categories.ids:
            raise schema.DatasetError(f"{instances_path}: categories {found.ids} differ from "
                                      f"those of the first split {categories.ids}")
        for i, ann in enumerate(_entries(inst, "annotations", instances_path,
                                         ("image_id", "category_id"))):
            category = index.get(int(ann["category_id"]))
            if category is None:
                raise schema.DatasetError(f"{instances_path}: annotations[{i}] has unknown "
                                          f"category_id {ann['category_id']}")
            image_id = int(ann["image_id"])
            bbox = ann.get("bbox") or [0, 0, 0, 0]
            area = float(ann.get("area", bbox[2] * bbox[3]))
            labels[image_id].add(category)
            if image_id not in largest or area > largest[image_id][0]:
                largest[image_id] = (area, category)
    image_dir = os.path.join(coco_dir, images_subdir, name)
    items = []
    for im in sorted(images, key=lambda im: int(im["id"])):
        image_id = int(im["id"])
        captions = by_image.get(image_id, [])
        if max_captions:
            captions = captions[:max_captions]
        items.append(dataset_writer.Item(
            filename=str(im["file_name"]), captions=captions,
            image_path=os.path.join(image_dir, str(im["file_name"])),
            label=largest[image_id][1] if image_id in largest else schema.NO_LABEL,
            labels=sorted(labels.get(image_id, ()))))
    return items


def parse_splits(spec: str) -> dict[str, str]:
    """'train=train2014,val=val2014' -> {"train": "train2014", "val": "val2014"}."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        output, sep, name = part.partition("=")
        if not sep or not output or not name:
            raise ValueError(f"--splits entry {part!r} is not OUTPUT_SPLIT=COCO_NAME")
        out[output] = name
    if not out:
        raise ValueError(f"--splits {spec!r} names no split")
    return out


def convert(coco_dir: str, output_dir: str, *, splits: Mapping[str, str],
            embed_fn: dataset_writer.EmbedFn, images_subdir: str = "",
            use_instances: bool = True, max_captions: int = 0,
            **writer_kwargs) -> dataset_writer.WriteSummary:
    """Converts COCO splits to TFRecords.

    Args:
      coco_dir: COCO root.
      output_dir: dataset directory.
      splits: output split name -> COCO split name.
      embed_fn: captions -> ([N, T, D] float32, [N] int32).
      images_subdir: folder between coco_dir and the image folders.
      use_instances: read instances_<name>.json for the labels (the first split's categories
        define the vocabulary); False, or a first split without it, gives no labels.
      max_captions: at most this many captions per image (0: all).
      **writer_kwargs: dataset_writer.write_dataset arguments (num_shards,
        text_encoder_handles, ...).

    Returns:
      dataset_writer.WriteSummary.
    """
    categories = None
    if use_instances:
        first = os.path.join(coco_dir, "annotations",
                             f"instances_{next(iter(splits.values()))}.json")
        if os.path.exists(first):
            categories = read_categories(first)
        else:
            print(f"{first} not found: writing without labels (image/label -1)")
    items = {out: load_split(coco_dir, name, images_subdir=images_subdir,
                             categories=categories, max_captions=max_captions)
             for out, name in splits.items()}
    settings = dict(writer_kwargs.pop("settings", None) or {}, max_captions=max_captions,
                    use_instances=categories is not None)
    return dataset_writer.write_dataset(
        output_dir, items, embed_fn=embed_fn, source="coco",
        label_vocabulary=categories.names if categories else (),
        extra={"coco_splits": dict(splits),
               "category_ids": categories.ids if categories else []},
        settings=settings, **writer_kwargs)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines this tool's flags (the shared writer flags included) in `flag_values`."""
    fv = flag_values
    dataset_writer.define_flags(fv, default_max_tokens=17, max_captions=True)
    flags.adopt_module_key_flags(dataset_writer, flag_values=fv)
    flags.DEFINE_string("coco_dir", None, "COCO root: annotations/captions_<name>.json "
                        "(+ instances_<name>.json) and the image folders.", flag_values=fv)
    flags.mark_flag_as_required("coco_dir", flag_values=fv)
    flags.DEFINE_string("splits", "train=train2014,val=val2014",
                        "Comma-separated OUTPUT_SPLIT=COCO_NAME pairs, e.g. "
                        "train=train2017,val=val2017.", flag_values=fv)
    flags.DEFINE_string("images_subdir", "", "Folder between --coco_dir and the <name>/ image "
                        "folders ('images' for the synthetic set's COCO format).",
                        flag_values=fv)
    flags.DEFINE_bool("use_instances", True, "Read instances_<name>.json (when present) for "
                      "image/labels and image/label.", flag_values=fv)


def run(flag_values: flags.FlagValues,
        make_embed_fn: Callable[[flags.FlagValues], dataset_writer.EmbedFn] = (
            dataset_writer.embed_fn_from_flags)) -> dataset_writer.WriteSummary:
    """Runs the conversion with parsed flags."""
    fv = flag_values
    try:
        splits = parse_splits(fv.splits)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    return convert(fv.coco_dir, fv.output_dir, splits=splits, embed_fn=make_embed_fn(fv),
                   images_subdir=fv.images_subdir, use_instances=fv.use_instances,
                   max_captions=fv.max_captions, **dataset_writer.writer_kwargs_from_flags(fv))


def entry_point() -> None:
    """The `xmcgan-coco-to-tfrecord` console script (and `python -m data_tools.coco_to_tfrecord`)."""
    dataset_writer.run_tool(define_flags, run)


if __name__ == "__main__":
    entry_point()
