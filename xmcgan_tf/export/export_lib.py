"""Training run checkpoint -> versioned SavedModel `EXPORT_DIR/<version>/` (SPEC §7).

The SavedModel is written into a hidden temp directory inside EXPORT_DIR and renamed to its
version number only when complete, so a version directory is either absent or whole: a killed
export leaves at most a hidden `.tmp-export-*` directory, which is not a version (TF Serving and
`serving_module.list_versions` only see integer names) and which the next export removes. An
existing version is never overwritten. The rename is atomic on a local (POSIX) file system.

Each version also holds `assets.extra/export_info.json` (checkpoint, step, sizes, text-encoder
handles, sentence method) and `assets.extra/tf_serving_warmup_requests` (one PredictionLog that
TF Serving and `xmcgan_tf.serving.server` replay on load).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import uuid
from typing import Any, Mapping

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

import xmcgan_tf
from xmcgan_tf import paths
from xmcgan_tf import progress
from xmcgan_tf.export import serving_module
from xmcgan_tf.models import generator_loading
from xmcgan_tf.text import encoder as text_encoder_lib

EXPORT_INFO_FILE = "export_info.json"
WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_CAPTION = "a small red circle above a blue square"
_TEMP_PREFIX = ".tmp-export-"
_TEMP_RE = re.compile(r"^\.tmp-export-\d+-(?P<pid>\d+)-[0-9a-f]+$")


class ExportError(RuntimeError):
    """An export that cannot be written; the message names the problem."""


@dataclasses.dataclass
class ExportResult:
    """Where and what was exported."""

    version: int
    path: str
    step: int
    checkpoint_path: str


def next_version(export_dir: str) -> int:
    """1 + the newest integer version in `export_dir` (1 when there is none)."""
    versions = serving_module.list_versions(export_dir)
    return versions[-1] + 1 if versions else 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_dirs(export_dir: str) -> list[str]:
    """Deletes temp dirs of exports whose process is gone; returns the removed paths."""
    removed = []
    if not os.path.isdir(export_dir):
        return removed
    for name in os.listdir(export_dir):
        match = _TEMP_RE.match(name)
        if match and not _pid_alive(int(match.group("pid"))):
            path = os.path.join(export_dir, name)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _write_warmup(path: str) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = serving_module.SERVING_DEFAULT
    request.inputs[serving_module.CAPTIONS].CopyFrom(tf.make_tensor_proto([WARMUP_CAPTION]))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())


def _publish(temp_dir: str, target: str) -> None:
    if os.path.exists(target):
        raise ExportError(f"{target} appeared while exporting; it was left untouched")
    os.rename(temp_dir, target)


def check_writable(export_dir: str) -> None:
    """Raises ExportError unless `export_dir` can be created and written to (checked before
    the model is loaded, so that a bad path fails in a second, not after minutes)."""
    try:
        os.makedirs(export_dir, exist_ok=True)
        probe = os.path.join(export_dir, f"{_TEMP_PREFIX}probe-{os.getpid()}")
        with open(probe, "w", encoding="utf-8") as f:
            f.write("")
        os.remove(probe)
    except OSError as e:
        raise ExportError(f"cannot write to the export directory {export_dir!r}: "
                          f"{e.strerror or e}") from e


def write_version(module: serving_module.ServingModule, export_dir: str, *,
                  version: int | None = None,
                  info: Mapping[str, Any] | None = None) -> tuple[int, str]:
    """Saves `module` as `export_dir/<version>/` (next integer when None) via temp dir + rename.

    Args:
      module: the serving module to save.
      export_dir: the model's base directory (TF Serving `--model_base_path`).
      version: version number >= 1, or None for `next_version(export_dir)`.
      info: extra facts merged into `assets.extra/export_info.json`.

    Returns:
      (version, path of the version directory).

    Raises:
      ExportError: the version exists already or is not a positive integer.
    """
    os.makedirs(export_dir, exist_ok=True)
    remove_stale_temp_dirs(export_dir)
    if version is None:
        version = next_version(export_dir)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExportError(f"version must be a positive integer, got {version!r}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target):
        raise ExportError(f"version {version} already exists at {target}; exports never overwrite "
                          f"a version (omit --version to write version {next_version(export_dir)})")
    temp_name = f"{_TEMP_PREFIX}{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temp_dir = os.path.join(export_dir, temp_name)
    try:
        tf.saved_model.save(module, temp_dir, signatures=module.signatures())
        extra_dir = os.path.join(temp_dir, "assets.extra")
        os.makedirs(extra_dir, exist_ok=True)
        export_info = {
            "version": version,
            "image_size": module.image_size,
            "z_dim": module.z_dim,
            "max_tokens": module.max_tokens,
            "embedding_dim": module.embedding_dim,
            "sentence_embedding": module.sentence_method,
            "signatures": list(serving_module.SIGNATURE_NAMES),
            "xmcgan_tf_version": xmcgan_tf.__version__,
            "tensorflow_version": tf.__version__,
            **dict(info or {}),
        }
        with open(os.path.join(extra_dir, EXPORT_INFO_FILE), "w") as f:
            json.dump(export_info, f, indent=2, sort_keys=True)
        _write_warmup(os.path.join(extra_dir, WARMUP_FILE))
        _publish(temp_dir, target)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return version, target


def read_export_info(version_dir: str) -> dict:
    """`assets.extra/export_info.json` of an exported version ({} when absent)."""
    path = os.path.join(version_dir, "assets.extra", EXPORT_INFO_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def version_holding(export_dir: str, checkpoint_path: str) -> int | None:
    """The newest version of `export_dir` exported from `checkpoint_path`, or None."""
    wanted = paths.absolute(checkpoint_path)
    for version in reversed(serving_module.list_versions(export_dir)):
        info = read_export_info(os.path.join(export_dir, str(version)))
        if info.get("checkpoint") and paths.absolute(info["checkpoint"]) == wanted:
            return version
    return None


def export(checkpoint_dir: str, export_dir: str, *, version: int | None = None,
           checkpoint: str | None = None, text_preprocessor: str | None = None,
           text_encoder: str | None = None, sentence_embedding: str | None = None) -> ExportResult:
    """Exports the EMA generator of a training run with its text encoder.

    T, D and the sentence-embedding method come from the run's `run.json`; the text-encoder
    handles from the dataset info recorded there.

    Args:
      checkpoint_dir: the run directory MODEL_DIR (holds run.json and checkpoints/).
      export_dir: base directory of the versions.
      version: version to write, or None for the next integer.
      checkpoint: a specific checkpoint (path or name in MODEL_DIR/checkpoints), or None for
        the latest.
      text_preprocessor: preprocessor handle; default the one in the run's dataset info.
      text_encoder: encoder handle; default the one in the run's dataset info.
      sentence_embedding: override of the run's sentence-embedding method.

    Returns:
      ExportResult of the written version.

    Raises:
      ExportError: no text-encoder handle, an encoder of another width than the run's, or an
        existing version.
      run_dir.CheckpointError: no usable run directory or checkpoint.
    """
    check_writable(export_dir)
    stages = progress.Stages(3)
    with stages("loading the EMA generator"):
        loaded = generator_loading.load_generators(checkpoint_dir, checkpoint)
    run_info = loaded.run_info
    recorded = (run_info.get("dataset_info") or {}).get("text_encoder") or {}
    preprocessor = text_preprocessor or recorded.get("preprocessor")
    encoder = text_encoder or recorded.get("encoder")
    if not preprocessor or not encoder:
        raise ExportError(f"the run's dataset info names no text encoder ({recorded}); pass "
                          "--text_preprocessor and --text_encoder")
    max_tokens = int(run_info["max_tokens"])
    embedding_dim = int(run_info["generator_config"]["embedding_dim"])
    method = sentence_embedding or run_info.get("sentence_embedding") or "official"
    with stages(f"loading the text encoder {encoder}"):
        encoder_layer = text_encoder_lib.TextEncoder(preprocessor, encoder,
                                                     max_tokens=max_tokens)
    if encoder_layer.embedding_dim != embedding_dim:
        raise ExportError(f"text encoder {encoder!r} gives D={encoder_layer.embedding_dim} but the "
                          f"run was trained on D={embedding_dim} embeddings")
    module = serving_module.ServingModule(
        loaded.generator_ema, encoder_layer, max_tokens=max_tokens, embedding_dim=embedding_dim,
        sentence_embedding=method)
    with stages("tracing the signatures and writing the SavedModel"):
        version, path = write_version(module, export_dir, version=version, info={
            "checkpoint": loaded.checkpoint_path, "step": loaded.step,
            "model_dir": checkpoint_dir, "text_preprocessor": preprocessor,
            "text_encoder": encoder,
        })
    return ExportResult(version=version, path=path, step=loaded.step,
                        checkpoint_path=loaded.checkpoint_path)
