r"""Localized Narratives (jsonl) -> TFRecord shards (SPEC §1.4).

Reads the narrative files as distributed (e.g. `coco_train_localized_narratives.jsonl`,
`open_images_train_v6_localized_narratives-0000X-of-00010.jsonl`): one JSON object per line
with at least `image_id` and `caption` (other fields such as `dataset_id`, `annotator_id`,
`timed_caption`, `traces` are ignored). The narratives of one image become its captions, in
file order. Images come from a folder:

- with --image_filename_format, the file is IMAGE_DIR/<format.format(image_id=...,
  dataset_id=...)>, e.g. '{image_id:0>12}.jpg' for COCO 2017, '{image_id}.jpg' for Open Images;
- otherwise the folder is indexed once: a file whose stem equals the image id, or (for numeric
  ids) whose stem ends in that number ('000000137576.jpg', 'COCO_train2014_000000137576.jpg').

`image/label` is -1 and `image/labels` empty (the narratives carry no classes).

  python -m data_tools.ln_to_tfrecord --output_dir DIR \
      --train_jsonl /data/ln/coco_train_localized_narratives.jsonl \
      --train_image_dir /data/coco/train2017 \
      --val_jsonl /data/ln/coco_val_localized_narratives.jsonl --val_image_dir /data/coco/val2017
"""

from __future__ import annotations

import json
import os
import re
from typing import Callable, Iterable

import tensorflow as tf
from absl import app
from absl import flags

from data_tools import dataset_writer
from xmcgan_tf.data import schema

_TRAILING_NUMBER = re.compile(r"(\d+)$")


def expand_paths(spec: str) -> list[str]:
    """Comma-separated paths or glob patterns -> sorted existing files; raises if none match."""
    paths = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        matched = sorted(tf.io.gfile.glob(part))
        if not matched:
            raise FileNotFoundError(f"no narrative file matches {part!r}")
        paths.extend(matched)
    if not paths:
        raise FileNotFoundError(f"no narrative file given ({spec!r})")
    return paths


def read_narratives(paths: Iterable[str]) -> dict[str, tuple[str, list[str]]]:
    """image_id -> (dataset_id, captions in file order) over all `paths`.

    Raises:
      DatasetError: a line is not a JSON object with string-like `image_id` and `caption`
        (names the file and the line).
    """
    out: dict[str, tuple[str, list[str]]] = {}
    for path in paths:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise schema.DatasetError(
                        f"{path}:{lineno}: not a JSON narrative ({e})") from e
                if (not isinstance(record, dict) or "image_id" not in record
                        or "caption" not in record):
                    raise schema.DatasetError(
                        f"{path}:{lineno}: a narrative needs 'image_id' and 'caption', got "
                        f"{sorted(record) if isinstance(record, dict) else type(record).__name__}")
                if not isinstance(record["caption"], str):
                    raise schema.DatasetError(f"{path}:{lineno}: 'caption' is not a string")
                image_id = str(record["image_id"])
                entry = out.setdefault(image_id, (str(record.get("dataset_id", "")), []))
                entry[1].append(record["caption"])
    return out


class ImageIndex:
    """Finds the image file of an image id in a folder (see the module docstring)."""

    def __init__(self, image_dir: str, filename_format: str = ""):
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"image folder not found: {image_dir}")
        self.image_dir, self.filename_format = image_dir, filename_format
        self._by_stem: dict[str, str] = {}
        self._by_number: dict[int, str] = {}
        if not filename_format:
            for name in sorted(os.listdir(image_dir)):
                stem = os.path.splitext(name)[0]
                self._by_stem.setdefault(stem, name)
                m = _TRAILING_NUMBER.search(stem)
                if m:
                    self._by_number.setdefault(int(m.group(1)), name)

    def filename(self, image_id: str, dataset_id: str = "") -> str:
        """File name (relative to the folder) of `image_id`; '<image_id>.jpg' if not found."""
        if self.filename_format:
            return self.filename_format.format(image_id=image_id, dataset_id=dataset_id)
        if image_id in self._by_stem:
            return self._by_stem[image_id]
        if image_id.isdigit() and int(image_id) in self._by_number:
            return self._by_number[int(image_id)]
        return f"{image_id}.jpg"


def load_split(jsonl: str, image_dir: str, *, image_filename_format: str = "",
               max_captions: int = 0) -> list[dataset_writer.Item]:
    """Items of one split: one per image id, captions = its narratives (first appearance order).

    Args:
      jsonl: comma-separated narrative files or glob patterns.
      image_dir: folder of the images.
      image_filename_format: str.format pattern with {image_id} / {dataset_id}; "" to search.
      max_captions: at most this many narratives per image (0: all).
    """
    narratives = read_narratives(expand_paths(jsonl))
    index = ImageIndex(image_dir, image_filename_format)
    items = []
    for image_id, (dataset_id, captions) in narratives.items():
        name = index.filename(image_id, dataset_id)
        items.append(dataset_writer.Item(
            filename=name, captions=captions[:max_captions] if max_captions else captions,
            image_path=os.path.join(image_dir, name)))
    return items


def convert(output_dir: str, *, splits: dict[str, tuple[str, str]],
            embed_fn: dataset_writer.EmbedFn, image_filename_format: str = "",
            max_captions: int = 0, **writer_kwargs) -> dataset_writer.WriteSummary:
    """Converts Localized Narratives splits to TFRecords.

    Args:
      output_dir: dataset directory.
      splits: split name -> (jsonl paths/patterns, image folder).
      embed_fn: captions -> ([N, T, D] float32, [N] int32).
      image_filename_format: see load_split.
      max_captions: at most this many narratives per image (0: all).
      **writer_kwargs: dataset_writer.write_dataset arguments.
    """
    items = {name: load_split(jsonl, image_dir, image_filename_format=image_filename_format,
                              max_captions=max_captions)
             for name, (jsonl, image_dir) in splits.items()}
    settings = dict(writer_kwargs.pop("settings", None) or {}, max_captions=max_captions,
                    image_filename_format=image_filename_format)
    return dataset_writer.write_dataset(
        output_dir, items, embed_fn=embed_fn, source="localized_narratives",
        extra={"narrative_files": {name: jsonl for name, (jsonl, _) in splits.items()}},
        settings=settings, **writer_kwargs)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines this tool's flags (the shared writer flags included) in `flag_values`."""
    fv = flag_values
    dataset_writer.define_flags(fv, default_max_tokens=64)
    flags.adopt_module_key_flags(dataset_writer, flag_values=fv)
    for split in ("train", "val"):
        flags.DEFINE_string(f"{split}_jsonl", None, f"Comma-separated narrative .jsonl files or "
                            f"glob patterns of the {split} split (empty: no {split} split).",
                            flag_values=fv)
        flags.DEFINE_string(f"{split}_image_dir", None, f"Folder of the {split} images.",
                            flag_values=fv)
    flags.DEFINE_string("image_filename_format", "", "Image file name pattern with {image_id} "
                        "and {dataset_id}, e.g. '{image_id:0>12}.jpg' (COCO 2017); empty: "
                        "search the folder by id.", flag_values=fv)
    flags.DEFINE_integer("max_captions", 0, "At most this many narratives per image (0: all).",
                         lower_bound=0, flag_values=fv)


def run(flag_values: flags.FlagValues,
        make_embed_fn: Callable[[flags.FlagValues], dataset_writer.EmbedFn] = (
            dataset_writer.embed_fn_from_flags)) -> dataset_writer.WriteSummary:
    """Runs the conversion with parsed flags."""
    fv = flag_values
    splits = {}
    for split in ("train", "val"):
        jsonl, image_dir = fv[f"{split}_jsonl"].value, fv[f"{split}_image_dir"].value
        if bool(jsonl) != bool(image_dir):
            raise app.UsageError(f"--{split}_jsonl and --{split}_image_dir go together")
        if jsonl:
            splits[split] = (jsonl, image_dir)
    if not splits:
        raise app.UsageError("give --train_jsonl/--train_image_dir and/or "
                             "--val_jsonl/--val_image_dir")
    return convert(fv.output_dir, splits=splits, embed_fn=make_embed_fn(fv),
                   image_filename_format=fv.image_filename_format,
                   max_captions=fv.max_captions, **dataset_writer.writer_kwargs_from_flags(fv))


def entry_point() -> None:
    """The `xmcgan-ln-to-tfrecord` console script (and `python -m data_tools.ln_to_tfrecord`)."""
    dataset_writer.run_tool(define_flags, run)


if __name__ == "__main__":
    entry_point()
