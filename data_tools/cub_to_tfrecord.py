r"""CUB-200-2011 with the 10-captions-per-image text of Reed et al. -> TFRecords (SPEC §1.4).

Reads the dataset as distributed (CUB_200_2011.tgz plus the `text/` caption folders):

  CUB_DIR/images.txt               '<image_id> <class_dir>/<file>.jpg' per line
  CUB_DIR/train_test_split.txt     '<image_id> <1 = train | 0 = test>'
  CUB_DIR/image_class_labels.txt   '<image_id> <class_id>' (class ids 1..200)
  CUB_DIR/classes.txt              '<class_id> <class_dir>'
  CUB_DIR/bounding_boxes.txt       '<image_id> <x> <y> <width> <height>' (only with a crop)
  CUB_DIR/images/<class_dir>/<file>.jpg
  TEXT_DIR/<class_dir>/<file>.txt  one caption per line (10 per image); TEXT_DIR defaults to
                                   CUB_DIR/text

`image/label` = species index (class id - 1); `label_vocabulary` = the class_dir names.
Splits: `official` uses train_test_split.txt (train -> "train", test -> "val"); `classes`
puts the species listed in --val_classes_file (one class_dir per line, e.g. the test-class
list of the text-to-image CUB split) in "val" and the rest in "train".
`--crop_bbox_scale 1.5` crops each image to a square of 1.5 x the longer bounding-box side
around the box centre (the AttnGAN preprocessing); 0 keeps whole images.

  python -m data_tools.cub_to_tfrecord --cub_dir /data/CUB_200_2011 --text_dir /data/birds/text \
      --output_dir DIR
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from absl import app
from absl import flags

from data_tools import dataset_writer
from xmcgan_tf.data import schema

SPLIT_MODES = ("official", "classes")


def read_table(path: str, types: Sequence[type], what: str) -> dict:
    """Reads a whitespace-separated CUB metadata file keyed by its first (integer) column.

    Args:
      path: the file.
      types: converters of the columns, the first being int (the key).
      what: description of the expected line for error messages, e.g. '<image_id> <path>'.

    Returns:
      key -> the remaining column(s) (a single value when there are two columns, else a tuple).

    Raises:
      FileNotFoundError: the file does not exist.
      DatasetError: a line does not parse (names the file and the line) or repeats a key.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"CUB metadata file not found: {path}")
    out = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise schema.DatasetError(f"{path}:{lineno}: not UTF-8 text ({e.reason})") from e
            if not line:
                continue
            fields = line.split(maxsplit=len(types) - 1)
            try:
                if len(fields) != len(types):
                    raise ValueError(f"{len(fields)} fields")
                values = [t(v) for t, v in zip(types, fields)]
            except ValueError as e:
                raise schema.DatasetError(
                    f"{path}:{lineno}: expected '{what}', got {line!r} ({e})") from e
            if values[0] in out:
                raise schema.DatasetError(f"{path}:{lineno}: id {values[0]} appears twice")
            out[values[0]] = values[1] if len(values) == 2 else tuple(values[1:])
    return out


def read_captions(path: str) -> list[str]:
    """Captions of one image, one per line ([] when the file is missing; blank lines are kept
    as empty captions, which the writer drops and counts)."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise schema.DatasetError(f"{path}:{line}: caption file is not UTF-8 text "
                                  f"({e.reason})") from e
    return [line.strip() for line in text.splitlines()]


def load_cub(cub_dir: str, *, text_dir: str | None = None, split_mode: str = "official",
             val_classes_file: str | None = None, crop_bbox_scale: float = 0.0,
             max_captions: int = 0) -> tuple[dict[str, list[dataset_writer.Item]], list[str]]:
    """Items per split ("train", "val") and the class names.

    Args:
      cub_dir: the CUB_200_2011 folder.
      text_dir: caption folder (default cub_dir/text).
      split_mode: "official" (train_test_split.txt) or "classes" (--val_classes_file).
      val_classes_file: class_dir names of the val species, one per line ("classes" mode).
      crop_bbox_scale: crop to a square of this many times the longer bounding-box side
        (0: no crop).
      max_captions: at most this many captions per image (0: all).

    Returns:
      ({"train": items, "val": items}, class names indexed by label).
    """
    if split_mode not in SPLIT_MODES:
        raise ValueError(f"split_mode must be one of {SPLIT_MODES}, got {split_mode!r}")
    text_dir = text_dir or os.path.join(cub_dir, "text")
    if not os.path.isdir(text_dir):
        raise FileNotFoundError(f"caption folder not found: {text_dir} (pass the text/ folder "
                                "of the CUB captions as --text_dir)")
    images = read_table(os.path.join(cub_dir, "images.txt"), (int, str), "<image_id> <path>")
    classes = read_table(os.path.join(cub_dir, "classes.txt"), (int, str),
                         "<class_id> <class_name>")
    image_class = read_table(os.path.join(cub_dir, "image_class_labels.txt"), (int, int),
                             "<image_id> <class_id>")
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise schema.DatasetError(f"{os.path.join(cub_dir, 'classes.txt')}: class ids must be "
                                  f"1..{len(classes)}")
    names = [classes[i] for i in range(1, len(classes) + 1)]
    required = [(image_class, "image_class_labels.txt")]
    is_train, val_classes = {}, set()
    if split_mode == "official":
        is_train = read_table(os.path.join(cub_dir, "train_test_split.txt"), (int, int),
                              "<image_id> <is_training_image>")
        required.append((is_train, "train_test_split.txt"))
    else:
        if not val_classes_file:
            raise ValueError("split_mode 'classes' needs val_classes_file")
        with open(val_classes_file, encoding="utf-8") as f:
            val_classes = {line.strip() for line in f if line.strip()}
        unknown = val_classes - set(names)
        if unknown:
            raise schema.DatasetError(f"{val_classes_file}: unknown classes {sorted(unknown)[:5]}")
    boxes = {}
    if crop_bbox_scale > 0:
        boxes = read_table(os.path.join(cub_dir, "bounding_boxes.txt"),
                           (int, float, float, float, float), "<image_id> <x> <y> <w> <h>")
        required.append((boxes, "bounding_boxes.txt"))
    splits = {"train": [], "val": []}
    for image_id in sorted(images):
        rel = images[image_id]
        for table, file in required:
            if image_id not in table:
                raise schema.DatasetError(f"{os.path.join(cub_dir, file)} has no line for "
                                          f"image {image_id} ({rel})")
        label = image_class[image_id] - 1
        if not 0 <= label < len(names):
            raise schema.DatasetError(f"{os.path.join(cub_dir, 'image_class_labels.txt')}: "
                                      f"image {image_id} has unknown class {label + 1}")
        if split_mode == "official":
            split = "train" if is_train[image_id] == 1 else "val"
        else:
            split = "val" if names[label] in val_classes else "train"
        crop = None
        if boxes:
            x, y, w, h = boxes[image_id]
            r = max(w, h) * crop_bbox_scale / 2.0
            cx, cy = x + w / 2.0, y + h / 2.0
            crop = (cx - r, cy - r, cx + r, cy + r)
        captions = read_captions(os.path.join(text_dir, os.path.splitext(rel)[0] + ".txt"))
        if max_captions:
            captions = captions[:max_captions]
        splits[split].append(dataset_writer.Item(
            filename=rel, captions=captions, image_path=os.path.join(cub_dir, "images", rel),
            label=label, labels=[label], crop_box=crop))
    return splits, names


def convert(cub_dir: str, output_dir: str, *, embed_fn: dataset_writer.EmbedFn,
            text_dir: str | None = None, split_mode: str = "official",
            val_classes_file: str | None = None, crop_bbox_scale: float = 0.0,
            max_captions: int = 0, **writer_kwargs) -> dataset_writer.WriteSummary:
    """Converts CUB-200-2011 to TFRecords (arguments as in load_cub; **writer_kwargs go to
    dataset_writer.write_dataset)."""
    splits, names = load_cub(cub_dir, text_dir=text_dir, split_mode=split_mode,
                             val_classes_file=val_classes_file,
                             crop_bbox_scale=crop_bbox_scale, max_captions=max_captions)
    splits = {name: items for name, items in splits.items() if items}
    settings = dict(writer_kwargs.pop("settings", None) or {}, split_mode=split_mode,
                    crop_bbox_scale=crop_bbox_scale, max_captions=max_captions)
    return dataset_writer.write_dataset(
        output_dir, splits, embed_fn=embed_fn, source="cub", label_vocabulary=names,
        extra={"split_mode": split_mode, "crop_bbox_scale": crop_bbox_scale},
        settings=settings, **writer_kwargs)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines this tool's flags (the shared writer flags included) in `flag_values`."""
    fv = flag_values
    dataset_writer.define_flags(fv, default_max_tokens=17, max_captions=True)
    flags.adopt_module_key_flags(dataset_writer, flag_values=fv)
    flags.DEFINE_string("cub_dir", None, "The CUB_200_2011 folder (images.txt, classes.txt, "
                        "image_class_labels.txt, train_test_split.txt, images/).",
                        flag_values=fv)
    flags.mark_flag_as_required("cub_dir", flag_values=fv)
    flags.DEFINE_string("text_dir", None, "Caption folder <class_dir>/<image>.txt "
                        "(default: CUB_DIR/text).", flag_values=fv)
    flags.DEFINE_enum("split_mode", "official", list(SPLIT_MODES),
                      "official: train_test_split.txt; classes: species in "
                      "--val_classes_file go to val.", flag_values=fv)
    flags.DEFINE_string("val_classes_file", None, "With --split_mode classes: class_dir names "
                        "of the val species, one per line.", flag_values=fv)
    flags.DEFINE_float("crop_bbox_scale", 0.0, "Crop to a square of this many times the "
                       "longer bounding-box side around its centre (AttnGAN: 1.5; 0: none).",
                       lower_bound=0.0, flag_values=fv)


def run(flag_values: flags.FlagValues,
        make_embed_fn: Callable[[flags.FlagValues], dataset_writer.EmbedFn] = (
            dataset_writer.embed_fn_from_flags)) -> dataset_writer.WriteSummary:
    """Runs the conversion with parsed flags."""
    fv = flag_values
    if fv.split_mode == "classes" and not fv.val_classes_file:
        raise app.UsageError("--split_mode classes needs --val_classes_file")
    return convert(fv.cub_dir, fv.output_dir, embed_fn=make_embed_fn(fv), text_dir=fv.text_dir,
                   split_mode=fv.split_mode, val_classes_file=fv.val_classes_file,
                   crop_bbox_scale=fv.crop_bbox_scale, max_captions=fv.max_captions,
                   **dataset_writer.writer_kwargs_from_flags(fv))


def entry_point() -> None:
    """The `xmcgan-cub-to-tfrecord` console script (and `python -m data_tools.cub_to_tfrecord`)."""
    dataset_writer.run_tool(define_flags, run)


if __name__ == "__main__":
    entry_point()
