"""Fixtures of the evaluation tests: small synthetic datasets with stand-in caption embeddings.

The scenes come from `data_tools.synthetic_scenes` (images, captions, objects/* ground truth);
captions are embedded by a deterministic stand-in (a vector per caption text, T = 6, D = 8) so
that no text encoder has to be built.
"""

import zlib

import numpy as np
import pytest

from data_tools import synthetic_scenes

MAX_TOKENS = 6
EMBEDDING_DIM = 8


def fake_embed(captions):
    """Caption texts -> ([N, T, D] float32, [N] int32): a fixed vector sequence per text."""
    embeddings = np.stack([
        np.random.default_rng(zlib.crc32(c.encode())).normal(size=(MAX_TOKENS, EMBEDDING_DIM))
        for c in captions]).astype(np.float32)
    num_tokens = np.array([min(2 + len(c.split()), MAX_TOKENS) for c in captions], np.int32)
    return embeddings, num_tokens


def write_scenes(output_dir, num_train: int, num_val: int, seed: int = 0,
                 image_size: int = 64) -> str:
    """Writes a synthetic TFRecord dataset; returns its directory."""
    synthetic_scenes.generate_tfrecords(
        str(output_dir), num_train=num_train, num_val=num_val, image_size=image_size, seed=seed,
        embed_fn=fake_embed, num_shards=2,
        text_encoder_handles={"preprocessor": "stand-in", "encoder": "stand-in"}, progress=False,
        log=None)
    return str(output_dir)


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory):
    """64 train + 48 val scenes at 64 px."""
    return write_scenes(tmp_path_factory.mktemp("scenes"), num_train=64, num_val=48)
