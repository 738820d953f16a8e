"""Tests of `python -m xmcgan_tf.generate` (in-process generation from an export)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.export import tiny_export
from xmcgan_tf import generate
from xmcgan_tf.export import serving_module
from xmcgan_tf.serving import client

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTIONS = ["a small red circle above a blue square", "a green star"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """Versions 1 and 2 with different weights."""
    path = str(tmp_path_factory.mktemp("export"))
    tiny_export.write_tiny_export(path, seed=0)
    tiny_export.write_tiny_export(path, seed=1)
    return path


def _seeded(model, captions, seeds) -> np.ndarray:
    return model.signatures[serving_module.SERVE_CAPTIONS_SEEDED](
        captions=tf.constant(captions), seed=tf.constant(seeds, tf.int64))["images"].numpy()


def test_generate_gives_every_caption_under_every_seed(export_dir):
    loaded = serving_module.load(export_dir)
    assert loaded.version == 2
    images = generate.generate(loaded, CAPTIONS, [0, 5, 9])
    assert images.shape == (2, 3, 64, 64, 3) and images.dtype == np.uint8
    for i, caption in enumerate(CAPTIONS):
        np.testing.assert_array_equal(images[i], _seeded(loaded.model, [caption] * 3, [0, 5, 9]))
    assert np.abs(images[0, 0].astype(int) - images[0, 1].astype(int)).mean() > 1.0


def test_generate_rejects_empty_input(export_dir):
    loaded = serving_module.load(export_dir, version=1)
    with pytest.raises(ValueError, match="empty"):
        generate.generate(loaded, ["a red circle", "  "], [0])
    with pytest.raises(ValueError, match="at least one"):
        generate.generate(loaded, ["a red circle"], [])


def test_command_line_writes_a_png_grid_of_the_newest_version(export_dir, tmp_path):
    output = tmp_path / "out.png"
    result = subprocess.run(
        [sys.executable, "-m", "xmcgan_tf.generate", f"--export_dir={export_dir}",
         "--seeds=0,1,2,3", f"--output={output}", *CAPTIONS],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "version 2" in result.stdout
    grid = tf.io.decode_png(tf.io.read_file(str(output))).numpy()
    seeds = [0, 1, 2, 3]
    newest = np.stack([_seeded(serving_module.load(export_dir, 2).model, [c] * 4, seeds)
                       for c in CAPTIONS])  # [2 captions, 4 seeds, 64, 64, 3]
    oldest = np.stack([_seeded(serving_module.load(export_dir, 1).model, [c] * 4, seeds)
                       for c in CAPTIONS])
    np.testing.assert_array_equal(grid, client.captioned_grid(newest, CAPTIONS, seeds))
    assert not np.array_equal(grid, client.captioned_grid(oldest, CAPTIONS, seeds))
