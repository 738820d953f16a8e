"""Shared pytest fixtures."""

import pytest


@pytest.fixture(scope="session")
def offline_text_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Builds the offline text encoder once per test process; returns DIR (preprocess/, encoder/).

    Tests call the builder's Python function directly (no subprocess).
    """
    from data_tools import build_text_encoder

    output_dir = tmp_path_factory.mktemp("text_encoder")
    build_text_encoder.build_text_encoder(str(output_dir))
    return str(output_dir)


@pytest.fixture(scope="session")
def synthetic_dataset_dir(tmp_path_factory: pytest.TempPathFactory,
                          offline_text_encoder_dir: str) -> str:
    """A small synthetic-scenes dataset (64 px, 256 train / 64 val, T = 24) encoded with the
    offline text encoder, written once per test process; returns its directory."""
    output_dir = str(tmp_path_factory.mktemp("synthetic_64"))
    write_synthetic_dataset(output_dir, offline_text_encoder_dir, num_train=256, num_val=64,
                            num_shards=2)
    return output_dir


def write_synthetic_dataset(output_dir: str, text_encoder_dir: str, *, num_train: int,
                            num_val: int, num_shards: int) -> None:
    """Writes 64 px synthetic scenes (seed 0, T = 24) encoded with the text encoder built in
    `text_encoder_dir` (preprocess/, encoder/) to `output_dir`."""
    import os

    from data_tools import dataset_writer
    from data_tools import synthetic_scenes

    handles = {"preprocessor": os.path.join(text_encoder_dir, "preprocess"),
               "encoder": os.path.join(text_encoder_dir, "encoder")}
    synthetic_scenes.generate_tfrecords(
        output_dir, num_train=num_train, num_val=num_val, image_size=64, seed=0,
        embed_fn=dataset_writer.make_embed_fn(handles["preprocessor"], handles["encoder"], 24),
        num_shards=num_shards, text_encoder_handles=handles, progress=False, log=None)


def save_random_dual_encoder(directory: str, *, max_tokens: int, embedding_dim: int) -> str:
    """Saves a randomly initialised 64 px dual encoder (joint dimension 8, width 4) in
    `directory`, standing in for a pretrained one; returns the directory."""
    from xmcgan_tf.models import dual_encoder_io
    from xmcgan_tf.networks import dual_encoder

    encoder = dual_encoder.DualEncoder(image_size=64, embedding_dim=embedding_dim, joint_dim=8,
                                       image_width=4, text_hidden_dim=8)
    encoder.build_for_inputs(max_tokens=max_tokens)
    dual_encoder_io.save_dual_encoder(encoder, directory, max_tokens=max_tokens)
    return directory
