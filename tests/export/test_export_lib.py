"""Tests of xmcgan_tf.export.export_lib and the `python -m xmcgan_tf.export` entry point."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from xmcgan_tf import run_dir
from tests.export import tiny_export
from xmcgan_tf.export import export_lib
from xmcgan_tf.export import serving_module
from xmcgan_tf.models import generator_loading
from xmcgan_tf.text import encoder as encoder_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_TOKENS = 10
STEP = 7
CAPTIONS = ["a small red circle above a blue square", "a yellow heart"]
SEEDS = [0, 5]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _write_run(model_dir: str, *, embedding_dim: int, text_encoder: dict) -> dict:
    """A run directory as training writes it: run.json + checkpoints/ckpt-1 with G and G_ema."""
    generator = tiny_export.tiny_generator(seed=0, embedding_dim=embedding_dim,
                                           max_tokens=MAX_TOKENS)
    generator_ema = tiny_export.tiny_generator(seed=1, embedding_dim=embedding_dim,
                                               max_tokens=MAX_TOKENS)
    checkpoint = tf.train.Checkpoint(generator=generator_loading.weights_by_path(generator),
                                     generator_ema=generator_loading.weights_by_path(generator_ema),
                                     step=tf.Variable(STEP, dtype=tf.int64))
    checkpoint.save(os.path.join(model_dir, run_dir.CHECKPOINT_SUBDIR, "ckpt"))
    run_info = {
        "generator_config": json.loads(json.dumps(generator.get_config(), default=str)),
        "max_tokens": MAX_TOKENS,
        "embedding_dim": embedding_dim,
        "sentence_embedding": "official",
        "dataset_info": {"max_tokens": MAX_TOKENS, "embedding_dim": embedding_dim,
                         "text_encoder": text_encoder},
    }
    with open(os.path.join(model_dir, run_dir.RUN_INFO_FILE), "w") as f:
        json.dump(run_info, f)
    return dict(generator=generator, generator_ema=generator_ema)


def _tree_digest(path: str) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            digest.update(name.encode())
            with open(os.path.join(root, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_exported_run_gives_the_ema_generator_pixels_in_a_fresh_process(
        offline_text_encoder_dir, tmp_path):
    handles = {"preprocessor": os.path.join(offline_text_encoder_dir, "preprocess"),
               "encoder": os.path.join(offline_text_encoder_dir, "encoder")}
    model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    run = _write_run(model_dir, embedding_dim=384, text_encoder=handles)

    exported = subprocess.run(
        [sys.executable, "-m", "xmcgan_tf.export", f"--model_dir={model_dir}",
         f"--export_dir={export_dir}"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=_env())
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "version 1" in exported.stdout
    for stage in ("[1/3] loading the EMA generator", "[2/3] loading the text encoder",
                  "[3/3] tracing the signatures and writing the SavedModel: done in"):
        assert stage in exported.stderr
    assert serving_module.list_versions(export_dir) == [1]
    assert export_lib.version_holding(export_dir, f"{model_dir}/checkpoints/ckpt-1") == 1
    assert export_lib.version_holding(export_dir, f"{model_dir}/checkpoints/ckpt-2") is None
    again = subprocess.run(
        [sys.executable, "-m", "xmcgan_tf.export", f"--model_dir={model_dir}",
         f"--export_dir={export_dir}", "--skip_if_exported"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=_env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert "version 1 already holds" in again.stdout
    assert serving_module.list_versions(export_dir) == [1]  # nothing new written

    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        from xmcgan_tf.export import serving_module
        loaded = serving_module.load({export_dir!r})
        images = loaded.model.signatures["serve_captions_seeded"](
            captions=tf.constant({CAPTIONS!r}), seed=tf.constant({SEEDS!r}, tf.int64))["images"]
        np.save({str(tmp_path / "images.npy")!r}, images.numpy())
    """)
    served = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, cwd=REPO_ROOT, env=_env())
    assert served.returncode == 0, served.stderr[-3000:]
    images = np.load(tmp_path / "images.npy")

    text_encoder = encoder_lib.TextEncoder(handles["preprocessor"], handles["encoder"],
                                           max_tokens=MAX_TOKENS)
    expected = tiny_export.reference_images(run["generator_ema"], text_encoder, CAPTIONS, SEEDS)
    tiny_export.assert_same_pixels(images, expected)
    raw = tiny_export.reference_images(run["generator"], text_encoder, CAPTIONS, SEEDS)
    assert np.abs(raw.astype(np.int32) - images.astype(np.int32)).mean() > 1.0  # EMA, not G

    info = export_lib.read_export_info(os.path.join(export_dir, "1"))
    assert info["step"] == STEP
    assert info["checkpoint"].endswith("ckpt-1")
    assert info["text_preprocessor"] == handles["preprocessor"]
    assert info["sentence_embedding"] == "official"
    assert (info["image_size"], info["max_tokens"], info["embedding_dim"]) == (64, MAX_TOKENS, 384)


@pytest.fixture(scope="module")
def module():
    """A tiny serving module, traced once for the whole file."""
    return tiny_export.tiny_module(seed=0)


def test_versions_increment_and_earlier_versions_stay_intact(module, tmp_path):
    export_dir = str(tmp_path / "export")
    assert export_lib.write_version(module, export_dir) == (1, os.path.join(export_dir, "1"))
    before = _tree_digest(os.path.join(export_dir, "1"))
    version, path = export_lib.write_version(module, export_dir)
    assert (version, path) == (2, os.path.join(export_dir, "2"))
    assert serving_module.list_versions(export_dir) == [1, 2]
    assert _tree_digest(os.path.join(export_dir, "1")) == before
    assert sorted(os.listdir(export_dir)) == ["1", "2"]  # no temp dir left behind
    assert serving_module.resolve_version(export_dir) == (2, path)
    assert os.path.exists(os.path.join(path, "assets.extra", export_lib.WARMUP_FILE))


def test_an_existing_version_is_never_overwritten(module, tmp_path):
    export_dir = str(tmp_path / "export")
    export_lib.write_version(module, export_dir, version=3)
    before = _tree_digest(os.path.join(export_dir, "3"))
    with pytest.raises(export_lib.ExportError, match="version 3 already exists.*version 4"):
        export_lib.write_version(module, export_dir, version=3)
    assert _tree_digest(os.path.join(export_dir, "3")) == before
    assert sorted(os.listdir(export_dir)) == ["3"]
    assert export_lib.next_version(export_dir) == 4
    with pytest.raises(export_lib.ExportError, match="positive integer"):
        export_lib.write_version(module, export_dir, version=0)


def test_a_failure_before_the_rename_leaves_nothing_visible(module, tmp_path, monkeypatch):
    export_dir = str(tmp_path / "export")
    export_lib.write_version(module, export_dir)

    def fail(temp_dir, target):
        assert os.path.exists(os.path.join(temp_dir, "saved_model.pb"))  # fully written by now
        raise OSError("disk full")

    monkeypatch.setattr(export_lib, "_publish", fail)
    with pytest.raises(OSError, match="disk full"):
        export_lib.write_version(module, export_dir)
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_the_temp_dir_of_a_dead_export_is_no_version_and_is_removed(module, tmp_path):
    export_dir = tmp_path / "export"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = export_dir / f".tmp-export-1-{dead.pid}-0123abcd"
    os.makedirs(stale / "variables")
    (stale / "saved_model.pb").write_bytes(b"partial")
    assert serving_module.list_versions(str(export_dir)) == []
    with pytest.raises(FileNotFoundError, match="no model versions"):
        serving_module.resolve_version(str(export_dir))
    assert export_lib.write_version(module, str(export_dir))[0] == 1
    assert sorted(os.listdir(export_dir)) == ["1"]


@pytest.mark.slow
def test_a_killed_export_leaves_nothing_visible(tmp_path):
    export_dir = str(tmp_path / "export")
    script = textwrap.dedent(f"""
        import os, signal
        from tests.export import tiny_export
        from xmcgan_tf.export import export_lib
        export_lib._publish = lambda temp_dir, target: os.kill(os.getpid(), signal.SIGKILL)
        tiny_export.write_tiny_export({export_dir!r})
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, cwd=REPO_ROOT, env=_env())
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    leftovers = os.listdir(export_dir)
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-export-1-")
    assert serving_module.list_versions(export_dir) == []
    assert tiny_export.write_tiny_export(export_dir)[0] == 1
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_export_needs_text_encoder_handles(tmp_path):
    model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    _write_run(model_dir, embedding_dim=tiny_export.EMBEDDING_DIM, text_encoder={})
    with pytest.raises(export_lib.ExportError, match="names no text encoder"):
        export_lib.export(model_dir, export_dir)
    assert not os.path.exists(export_dir) or os.listdir(export_dir) == []


def test_export_rejects_an_encoder_of_another_width(offline_text_encoder_dir, tmp_path):
    """Handles given explicitly win over the (absent) recorded ones; D must match the run."""
    model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
    _write_run(model_dir, embedding_dim=tiny_export.EMBEDDING_DIM, text_encoder={})
    with pytest.raises(export_lib.ExportError, match="D=384.*D=16"):
        export_lib.export(model_dir, export_dir,
                          text_preprocessor=os.path.join(offline_text_encoder_dir, "preprocess"),
                          text_encoder=os.path.join(offline_text_encoder_dir, "encoder"))
    assert not os.path.exists(export_dir) or os.listdir(export_dir) == []
