"""Sharded, resumable TFRecord writer shared by every dataset converter (SPEC §1.1).

Legend: N captions in one embedding call, S captions of one image, T tokens per caption
(including [CLS] and [SEP], padded), D text-encoder dimension.

`write_dataset` turns, per split, a sequence of `Item`s (an image as bytes or a path, its
captions and labels) into `OUTPUT_DIR/<split>.tfrecord-XXXXX-of-YYYYY` shards in the
`xmcgan_tf.data.schema` format, then writes `dataset_info.json` last.

- Captions of many images are embedded together through an `EmbedFn`
  (`captions: list[str]` -> (`[N, T, D] float32`, `[N] int32`)); `make_embed_fn` builds one
  from a TF-Hub BERT preprocessor/encoder pair.
- Shard k of K holds items floor(k * n / K) .. floor((k + 1) * n / K) - 1 of the split's n
  items (contiguous runs), so the assignment depends only on n and K. Each shard is written
  to `<shard>.tmp` and renamed when complete, after its statistics
  (`shard_stats/<shard>.json`: record count, problems, settings) are written; a re-run keeps
  every shard whose file and statistics exist and that skipped no missing or unreadable
  image, and rewrites the others (so images restored since the last run are written).
- Bad input never stops the run: a missing or undecodable image, or an image without a
  non-empty caption, is skipped; empty captions are dropped; grayscale, CMYK, palette and alpha
  images are converted to RGB. Each event is recorded with the file name and printed in a
  summary at the end. A split of which no image could be written raises `DatasetError`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
import sys
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tqdm
from absl import app
from absl import flags
from absl import logging

import xmcgan_tf
from data_tools import image_io
from xmcgan_tf import cli
from xmcgan_tf import files
from xmcgan_tf import paths
from xmcgan_tf.data import schema
from xmcgan_tf.text import encoder as text_encoder

EmbedFn = Callable[[list], tuple]
"""`captions: list[str]` (N, none empty) -> (`[N, T, D] float32`, `[N] int32` token counts)."""

STATS_DIR = "shard_stats"


# Problem kinds, in the order the summary lists them, with their headings.
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
NO_CAPTIONS = "no_captions"
EMPTY_CAPTION = "empty_caption"
CONVERTED = "converted_to_rgb"
PROBLEM_TITLES = {
    MISSING_IMAGE: "image file not found (image skipped)",
    UNREADABLE_IMAGE: "image could not be decoded (image skipped)",
    NO_CAPTIONS: "no non-empty caption (image skipped)",
    EMPTY_CAPTION: "empty caption dropped",
    CONVERTED: "converted to RGB",
}
SKIPPING_PROBLEMS = (MISSING_IMAGE, UNREADABLE_IMAGE, NO_CAPTIONS)
# Skipped images a re-run tries again: the file may have been restored or repaired since.
RETRIED_PROBLEMS = (MISSING_IMAGE, UNREADABLE_IMAGE)
_NAMES_SHOWN = 20


@dataclasses.dataclass(frozen=True)
class Item:
    """One source image with its captions and labels.

    Exactly one of `image_bytes` and `image_path` is set.

    Attributes:
      filename: stored as `image/filename` and used in every message.
      captions: the image's captions; empty ones are dropped (and counted).
      image_path: path of an image file in any format PIL reads.
      image_bytes: the encoded image in any format PIL reads.
      label: single class id, `schema.NO_LABEL` if none.
      labels: multi-label class ids.
      objects: per-object ground truth, field in `schema.OBJECT_FIELDS` -> one int per object.
      states_position: one 0/1 per caption (aligned with `captions`).
      states_size: one 0/1 per caption (aligned with `captions`).
      counterfactual_captions: optional false captions, one per caption (aligned with
        `captions`), each differing from its caption in one attribute; embedded with the
        captions and written as `caption/counterfactual_*`.
      crop_box: optional (left, top, right, bottom) pixel box the image is cropped to.
    """

    filename: str
    captions: Sequence[str]
    image_path: str | None = None
    image_bytes: bytes | None = None
    label: int = schema.NO_LABEL
    labels: Sequence[int] = ()
    objects: Mapping[str, Sequence[int]] | None = None
    states_position: Sequence[int] | None = None
    states_size: Sequence[int] | None = None
    counterfactual_captions: Sequence[str] | None = None
    crop_box: tuple[float, float, float, float] | None = None

    def __post_init__(self):
        if (self.image_path is None) == (self.image_bytes is None):
            raise ValueError(f"item {self.filename!r}: set exactly one of image_path and "
                             "image_bytes")
        if isinstance(self.captions, str):
            raise ValueError(f"item {self.filename!r}: captions must be a sequence of strings, "
                             "not one string")
        for name in ("states_position", "states_size", "counterfactual_captions"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.captions):
                raise ValueError(f"item {self.filename!r}: {len(values)} {name} values for "
                                 f"{len(self.captions)} captions")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One recorded input problem: its kind (a key of PROBLEM_TITLES), the file and details."""

    kind: str
    filename: str
    detail: str = ""


@dataclasses.dataclass
class SplitSummary:
    """What happened to one split.

    Attributes:
      split: split name.
      items: input items.
      written: records in the split's shards.
      max_captions: most captions in one record (0 if none written).
      shards_written: shards written by this run.
      shards_skipped: complete shards found from an earlier run and kept.
      problems: every recorded problem, including those of kept shards.
    """

    split: str
    items: int
    written: int = 0
    max_captions: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def count(self, kind: str) -> int:
        """Number of problems of `kind`."""
        return sum(1 for p in self.problems if p.kind == kind)

    def files(self, kind: str) -> list[str]:
        """File names with a problem of `kind`, in input order."""
        return [p.filename for p in self.problems if p.kind == kind]

    @property
    def skipped(self) -> int:
        return sum(self.count(k) for k in SKIPPING_PROBLEMS)

    def format(self) -> str:
        """Human-readable report naming every problem file (the first few per kind)."""
        lines = [f"split {self.split!r}: {self.written} of {self.items} images written, "
                 f"{self.skipped} skipped ({self.shards_written} shards written, "
                 f"{self.shards_skipped} kept from an earlier run)"]
        for kind, title in PROBLEM_TITLES.items():
            found = [p for p in self.problems if p.kind == kind]
            if not found:
                continue
            lines.append(f"  {title}: {len(found)}")
            for p in found[:_NAMES_SHOWN]:
                lines.append(f"    {p.filename}" + (f" ({p.detail})" if p.detail else ""))
            if len(found) > _NAMES_SHOWN:
                lines.append(f"    ... and {len(found) - _NAMES_SHOWN} more")
        return "\n".join(lines)


@dataclasses.dataclass
class WriteSummary:
    """Result of `write_dataset`: per-split summaries and the written dataset_info."""

    output_dir: str
    splits: dict[str, SplitSummary]
    info: schema.DatasetInfo

    def format(self) -> str:
        return "\n".join([f"dataset written to {self.output_dir}"]
                         + [s.format() for s in self.splits.values()])


def make_embed_fn(preprocessor: str, encoder: str, max_tokens: int,
                  batch_size: int = 128) -> EmbedFn:
    """Builds an EmbedFn from TF-Hub handles or local directories of a BERT text encoder.

    Args:
      preprocessor: handle of the BERT preprocessor SavedModel.
      encoder: handle of the BERT encoder SavedModel.
      max_tokens: T, tokens per caption including [CLS] and [SEP].
      batch_size: captions per encoder call.

    Returns:
      captions (list[str]) -> (`[N, T, D] float32` sequence_output, `[N] int32` num_tokens).
    """
    layer = text_encoder.TextEncoder(preprocessor=preprocessor, encoder=encoder,
                                     max_tokens=max_tokens)

    def embed(captions: list) -> tuple:
        return text_encoder.encode_captions(layer, captions, batch_size=batch_size)

    return embed


def shard_bounds(num_items: int, num_shards: int) -> list[tuple[int, int]]:
    """[start, end) item ranges: shard k holds items floor(k*n/K) .. floor((k+1)*n/K) - 1."""
    return [(k * num_items // num_shards, (k + 1) * num_items // num_shards)
            for k in range(num_shards)]


@dataclasses.dataclass
class _Ready:
    """An item whose image and captions passed the checks."""

    item: Item
    image: image_io.RgbImage
    captions: list[str]
    states_position: list[int] | None
    states_size: list[int] | None
    counterfactuals: list[str] | None


def _prepare(item: Item) -> tuple[_Ready | None, list[Problem]]:
    """Checks one item: drops empty captions, reads and normalises the image."""
    problems = []
    keep = []
    for i, caption in enumerate(item.captions):
        if caption is None or not str(caption).strip():
            problems.append(Problem(EMPTY_CAPTION, item.filename, f"caption {i}"))
        else:
            keep.append(i)
    if not keep:
        problems.append(Problem(NO_CAPTIONS, item.filename,
                                f"{len(item.captions)} captions, all empty"
                                if item.captions else "no captions"))
        return None, problems
    try:
        data = item.image_bytes
        if data is None:
            data = image_io.read_file(item.image_path)
        image = image_io.prepare_image(data, item.filename, crop_box=item.crop_box)
    except FileNotFoundError as e:
        problems.append(Problem(MISSING_IMAGE, item.filename, str(e)))
        return None, problems
    except image_io.ImageError as e:
        problems.append(Problem(UNREADABLE_IMAGE, item.filename, str(e)))
        return None, problems
    if image.source_mode != "RGB":
        problems.append(Problem(CONVERTED, item.filename,
                                f"{image.source_format} {image.source_mode}"))
    select = lambda values: None if values is None else [int(values[i]) for i in keep]
    return _Ready(item=item, image=image,
                  captions=[" ".join(str(item.captions[i]).split()) for i in keep],
                  states_position=select(item.states_position),
                  states_size=select(item.states_size),
                  counterfactuals=None if item.counterfactual_captions is None else
                  [" ".join(str(item.counterfactual_captions[i]).split()) for i in keep]
                  ), problems


class _ShardWriter:
    """Writes the records of one shard, embedding captions in batches."""

    def __init__(self, path: str, embed_fn: EmbedFn, caption_batch_size: int,
                 text_dims: dict):
        self._writer = tf.io.TFRecordWriter(path)
        self._embed_fn = embed_fn
        self._caption_batch_size = caption_batch_size
        self._text_dims = text_dims  # {"max_tokens": T, "embedding_dim": D}, shared by shards
        self._pending: list[_Ready] = []
        self._pending_captions = 0
        self.records = 0
        self.max_captions = 0

    def add(self, ready: _Ready) -> int:
        """Queues one image; returns the number of records written by this call."""
        self._pending.append(ready)
        self._pending_captions += len(ready.captions) * (2 if ready.counterfactuals else 1)
        if self._pending_captions >= self._caption_batch_size:
            return self.flush()
        return 0

    def flush(self) -> int:
        """Embeds the queued captions and writes their records; returns how many."""
        if not self._pending:
            return 0
        captions = [c for r in self._pending for c in r.captions + (r.counterfactuals or [])]
        embeddings, num_tokens = self._embed_fn(captions)
        embeddings = np.asarray(embeddings, np.float32)
        num_tokens = np.asarray(num_tokens)
        if embeddings.ndim != 3 or embeddings.shape[0] != len(captions):
            raise ValueError(f"embed_fn returned embeddings of shape {embeddings.shape} for "
                             f"{len(captions)} captions; expected [N, T, D]")
        if num_tokens.shape != (len(captions),):
            raise ValueError(f"embed_fn returned num_tokens of shape {num_tokens.shape} for "
                             f"{len(captions)} captions; expected [N]")
        dims = {"max_tokens": int(embeddings.shape[1]), "embedding_dim": int(embeddings.shape[2])}
        if not self._text_dims:
            self._text_dims.update(dims)
        elif dims != self._text_dims:
            raise ValueError(f"embed_fn output changed from {self._text_dims} to {dims}")
        offset = 0
        for r in self._pending:
            s = len(r.captions)
            counterfactual = {}
            if r.counterfactuals:
                rows = slice(offset + s, offset + 2 * s)
                counterfactual = dict(counterfactual_captions=r.counterfactuals,
                                      counterfactual_embeddings=embeddings[rows],
                                      counterfactual_num_tokens=num_tokens[rows].tolist())
            example = schema.make_example(
                image=r.image.data, filename=r.item.filename, captions=r.captions,
                embeddings=embeddings[offset:offset + s],
                num_tokens=num_tokens[offset:offset + s].tolist(), label=r.item.label,
                labels=r.item.labels, objects=r.item.objects,
                states_position=r.states_position, states_size=r.states_size,
                **counterfactual)
            self._writer.write(example.SerializeToString())
            offset += 2 * s if r.counterfactuals else s
            self.max_captions = max(self.max_captions, s)
        written = len(self._pending)
        self.records += written
        self._pending, self._pending_captions = [], 0
        return written

    def close(self):
        self._writer.close()


def _stats_path(output_dir: str, shard: str) -> str:
    return os.path.join(output_dir, STATS_DIR, shard + ".json")


def _read_stats(output_dir: str, shard: str) -> dict | None:
    path = _stats_path(output_dir, shard)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except json.JSONDecodeError:
        return None


def _normalise(value) -> object:
    """JSON round trip, so fingerprints compare equal before and after being stored."""
    return json.loads(json.dumps(value, sort_keys=True))


def _remove_split_files(output_dir: str, split: str) -> None:
    for pattern in (os.path.join(output_dir, f"{split}.tfrecord-*"),
                    os.path.join(output_dir, STATS_DIR, f"{split}.tfrecord-*")):
        for path in tf.io.gfile.glob(pattern):
            tf.io.gfile.remove(path)


def _check_stale_shards(output_dir: str, split: str, num_shards: int) -> None:
    pattern = os.path.join(output_dir, f"{split}.tfrecord-*-of-*")
    stale = []
    for path in tf.io.gfile.glob(pattern):
        parsed = schema.parse_shard_name(path)
        if parsed and parsed[0] == split and parsed[2] != num_shards:
            stale.append(os.path.basename(path))
    if stale:
        raise schema.DatasetError(
            f"{output_dir} already holds shards of split {split!r} written with another shard "
            f"count ({', '.join(sorted(stale)[:4])}{' ...' if len(stale) > 4 else ''}); this "
            f"run writes {num_shards} shards. Use a new output directory or overwrite=True "
            "(--overwrite).")


def _chunks(start: int, end: int, size: int) -> Iterable[range]:
    for lo in range(start, end, size):
        yield range(lo, min(lo + size, end))


def _write_split(output_dir: str, split: str, items: Sequence[Item], num_shards: int, *,
                 embed_fn: EmbedFn, fingerprint: dict, caption_batch_size: int,
                 pool: concurrent.futures.ThreadPoolExecutor, num_workers: int,
                 text_dims: dict, progress: bool) -> SplitSummary:
    summary = SplitSummary(split=split, items=len(items))
    bounds = shard_bounds(len(items), num_shards)
    todo = []
    for k, (start, end) in enumerate(bounds):
        shard = schema.shard_name(split, k, num_shards)
        stats = _read_stats(output_dir, shard)
        complete = tf.io.gfile.exists(os.path.join(output_dir, shard)) and stats is not None
        retried = sum(p[0] in RETRIED_PROBLEMS for p in stats["problems"]) if complete else 0
        if complete and stats.get("fingerprint") != fingerprint:
            raise schema.DatasetError(
                f"{os.path.join(output_dir, shard)} was written with other settings "
                f"({_stats_path(output_dir, shard)}: {stats.get('fingerprint')}; this run: "
                f"{fingerprint}). Use a new output directory or overwrite=True (--overwrite).")
        if complete and retried:
            logging.info("%s: writing it again, %d image(s) were missing or unreadable last "
                         "time", shard, retried)
        if complete and not retried:
            summary.shards_skipped += 1
            summary.written += stats["records"]
            summary.max_captions = max(summary.max_captions, stats["max_captions"])
            summary.problems.extend(Problem(*p) for p in stats["problems"])
            if stats["records"] and not text_dims:
                text_dims.update(max_tokens=stats["max_tokens"],
                                 embedding_dim=stats["embedding_dim"])
        else:
            todo.append((k, shard, start, end))
    done_items = len(items) - sum(end - start for _, _, start, end in todo)
    with tqdm.tqdm(total=len(items), initial=done_items, unit="img", desc=split,
                   disable=not progress, dynamic_ncols=True, file=sys.stderr) as bar:
        for k, shard, start, end in todo:
            path = os.path.join(output_dir, shard)
            writer = _ShardWriter(path + files.TMP_SUFFIX, embed_fn, caption_batch_size, text_dims)
            problems: list[Problem] = []
            try:
                for chunk in _chunks(start, end, max(16, 8 * num_workers)):
                    for ready, found in pool.map(lambda i: _prepare(items[i]), chunk):
                        problems.extend(found)
                        if ready is None:
                            bar.update(1)
                        else:
                            bar.update(writer.add(ready))
                bar.update(writer.flush())
            finally:
                writer.close()
            files.write_json_atomic(_stats_path(output_dir, shard), {
                "fingerprint": fingerprint, "records": writer.records,
                "max_captions": writer.max_captions,
                "max_tokens": text_dims.get("max_tokens"),
                "embedding_dim": text_dims.get("embedding_dim"),
                "problems": [[p.kind, p.filename, p.detail] for p in problems],
                "items": [start, end]}, indent=1)
            tf.io.gfile.rename(path + files.TMP_SUFFIX, path, overwrite=True)
            summary.shards_written += 1
            summary.written += writer.records
            summary.max_captions = max(summary.max_captions, writer.max_captions)
            summary.problems.extend(problems)
    order = {kind: i for i, kind in enumerate(PROBLEM_TITLES)}
    summary.problems.sort(key=lambda p: order.get(p.kind, len(order)))
    return summary


def write_dataset(output_dir: str, splits: Mapping[str, Sequence[Item] | Iterable[Item]], *,
                  embed_fn: EmbedFn, num_shards: int | Mapping[str, int], source: str,
                  text_encoder_handles: Mapping[str, str], label_vocabulary: Sequence[str] = (),
                  image_size: Sequence[int] | None = None, extra: Mapping | None = None,
                  settings: Mapping | None = None, caption_batch_size: int = 256,
                  num_workers: int = 4, overwrite: bool = False, progress: bool = True,
                  log: Callable[[str], None] | None = print) -> WriteSummary:
    """Writes the shards of every split, then `dataset_info.json`.

    Args:
      output_dir: dataset directory (created).
      splits: split name -> items. A `Sequence` is indexed lazily (only the items of shards
        that must be written are read); any other iterable is materialised first.
      embed_fn: captions -> (`[N, T, D] float32`, `[N] int32`); see `make_embed_fn`.
      num_shards: shards per split (or per split name); a split with fewer items than shards
        gets one shard per item.
      source: dataset source name stored in dataset_info ("coco", "cub", ...).
      text_encoder_handles: {"preprocessor": handle, "encoder": handle} stored in
        dataset_info.text_encoder (local directories made absolute).
      label_vocabulary: class names indexed by `image/label` / `image/labels`.
      image_size: [height, width] of all images, or None for original sizes.
      extra: source-specific facts stored in dataset_info.extra.
      settings: further options that change the records (stored with each shard; a re-run
        with different settings into the same directory is refused).
      caption_batch_size: captions embedded per `embed_fn` call (at least).
      num_workers: threads that read and convert images.
      overwrite: delete the splits' existing shards first instead of resuming.
      progress: show a tqdm progress bar (images/s) per split.
      log: where the summary is printed (None: not printed).

    Returns:
      WriteSummary with per-split counts and problems and the written DatasetInfo.

    Raises:
      DatasetError: a split is empty or none of its images could be written, or the
        directory holds shards written with other settings or another shard count.
    """
    if not splits:
        raise ValueError("no splits to write")
    if caption_batch_size < 1 or num_workers < 1:
        raise ValueError(f"caption_batch_size ({caption_batch_size}) and num_workers "
                         f"({num_workers}) must be >= 1")
    materialised = {split: items if isinstance(items, Sequence) else list(items)
                    for split, items in splits.items()}
    shard_counts = {}
    for split, items in materialised.items():
        if not items:
            raise schema.DatasetError(f"split {split!r} has no items to write")
        wanted = num_shards[split] if isinstance(num_shards, Mapping) else num_shards
        if wanted < 1:
            raise ValueError(f"num_shards for split {split!r} must be >= 1, got {wanted}")
        shard_counts[split] = min(int(wanted), len(items))
    text_encoder_handles = {role: paths.absolute(handle)
                            for role, handle in text_encoder_handles.items()}
    tf.io.gfile.makedirs(output_dir)
    info_path = os.path.join(output_dir, schema.DATASET_INFO_FILE)
    if tf.io.gfile.exists(info_path):
        tf.io.gfile.remove(info_path)  # rewritten last: its presence marks a complete dataset
    common = _normalise({"source": source, "text_encoder": dict(text_encoder_handles),
                         "label_vocabulary": list(label_vocabulary),
                         "image_size": None if image_size is None else list(image_size),
                         "extra": dict(extra or {}), "settings": dict(settings or {})})
    text_dims: dict = {}
    summaries = {}
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        for split, items in materialised.items():
            if overwrite:
                _remove_split_files(output_dir, split)
            else:
                _check_stale_shards(output_dir, split, shard_counts[split])
            fingerprint = dict(common, split=split, num_items=len(items),
                               num_shards=shard_counts[split])
            summary = _write_split(
                output_dir, split, items, shard_counts[split], embed_fn=embed_fn,
                fingerprint=fingerprint, caption_batch_size=caption_batch_size, pool=pool,
                num_workers=num_workers, text_dims=text_dims, progress=progress)
            summaries[split] = summary
            if summary.written == 0:
                raise schema.DatasetError(
                    f"none of the {summary.items} images of split {split!r} could be written "
                    f"to {output_dir}:\n{summary.format()}")
    info = schema.DatasetInfo(
        splits={s: v.written for s, v in summaries.items()},
        captions_per_image=max(v.max_captions for v in summaries.values()),
        max_tokens=text_dims["max_tokens"], embedding_dim=text_dims["embedding_dim"],
        text_encoder=dict(text_encoder_handles), label_vocabulary=list(label_vocabulary),
        image_size=None if image_size is None else [int(v) for v in image_size],
        source=source, tool_version=xmcgan_tf.__version__, num_shards=shard_counts,
        extra=dict(extra or {}))
    schema.write_dataset_info(output_dir, info)
    result = WriteSummary(output_dir=output_dir, splits=summaries, info=info)
    if log is not None:
        log(result.format())
    return result


def count_problems(summary: WriteSummary) -> dict[str, dict[str, int]]:
    """split -> problem kind -> count (only kinds that occurred)."""
    return {split: dict(collections.Counter(p.kind for p in s.problems))
            for split, s in summary.splits.items()}


# Command-line flags shared by the converters (each calls define_flags, then
# adopt_module_key_flags(dataset_writer) so they appear in its --help).


def define_flags(flag_values: flags.FlagValues, *, default_max_tokens: int,
                 default_preprocessor: str = text_encoder.DEFAULT_PREPROCESSOR_URL,
                 default_encoder: str = text_encoder.DEFAULT_ENCODER_URL,
                 default_num_shards: int = 16, max_captions: bool = False) -> None:
    """Defines --output_dir, --num_shards, --text_preprocessor, --text_encoder, --max_tokens,
    --caption_batch_size, --encoder_batch_size, --num_workers, --overwrite (and --max_captions
    with `max_captions`) in `flag_values`.

    The text-encoder handles default to the TF-Hub BERT pair a connected user passes."""
    fv = flag_values
    flags.DEFINE_string("output_dir", None, "Directory the TFRecord shards and "
                        "dataset_info.json are written to (created).", flag_values=fv)
    flags.mark_flag_as_required("output_dir", flag_values=fv)
    flags.DEFINE_integer("num_shards", default_num_shards, "Shards per split.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_string("text_preprocessor", default_preprocessor,
                        "TF-Hub handle or local directory of the BERT preprocessor.",
                        flag_values=fv)
    flags.DEFINE_string("text_encoder", default_encoder,
                        "TF-Hub handle or local directory of the BERT encoder.", flag_values=fv)
    flags.DEFINE_integer("max_tokens", default_max_tokens,
                         "T: tokens per caption including [CLS] and [SEP] (longer captions "
                         "are truncated).", lower_bound=3, flag_values=fv)
    flags.DEFINE_integer("caption_batch_size", 512, "Captions collected before an embedding "
                         "pass.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("encoder_batch_size", 128, "Captions per text-encoder call.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("num_workers", 4, "Threads reading and converting images.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Delete existing shards of the splits first instead "
                      "of resuming (a re-run normally keeps complete shards).", flag_values=fv)
    if max_captions:
        flags.DEFINE_integer("max_captions", 0, "At most this many captions per image (0: all).",
                             lower_bound=0, flag_values=fv)


def embed_fn_from_flags(flag_values: flags.FlagValues) -> EmbedFn:
    """make_embed_fn from --text_preprocessor, --text_encoder, --max_tokens and
    --encoder_batch_size."""
    fv = flag_values
    return make_embed_fn(fv.text_preprocessor, fv.text_encoder, fv.max_tokens,
                         batch_size=fv.encoder_batch_size)


def writer_kwargs_from_flags(flag_values: flags.FlagValues) -> dict:
    """write_dataset keyword arguments set by the shared flags (all but embed_fn)."""
    fv = flag_values
    return dict(num_shards=fv.num_shards,
                text_encoder_handles={"preprocessor": fv.text_preprocessor,
                                      "encoder": fv.text_encoder},
                caption_batch_size=fv.caption_batch_size, num_workers=fv.num_workers,
                overwrite=fv.overwrite, settings={"max_tokens": fv.max_tokens})


def run_tool(define_tool_flags: Callable[[], None],
             run: Callable[[flags.FlagValues], object]) -> None:
    """A converter's `__main__`: defines its flags, parses the command line and runs it.

    Args:
      define_tool_flags: defines the tool's flags in `flags.FLAGS`.
      run: runs the tool with the parsed `flags.FLAGS`.
    """
    def main(argv: Sequence[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        with cli.exit_on(*cli.USER_ERRORS, tf.errors.NotFoundError,
                         tf.errors.PermissionDeniedError):
            run(flags.FLAGS)

    cli.run(main, define_tool_flags, entry_module=define_tool_flags.__module__)
