"""Every GAN variant of gin/variants/ trains end to end through the one training entry point:
a few steps on the tiny configuration, a checkpoint, a resume. T2I_CL and SCL load a frozen
dual encoder by path (ENCODER_DIR) and report their own generator terms."""

import os

import gin
import numpy as np
import pytest

from tests import conftest
from tests.training import tiny_dataset
from xmcgan_tf import train
from xmcgan_tf.training import summaries

T, D = 6, 16  # MAX_TOKENS and EMBEDDING_DIM of gin/tests/tiny.gin

VARIANT_TERMS = {
    "xmcgan": ["loss/g_sentence", "loss/g_word", "loss/g_image_d"],
    "xmcgan_no_contrastive": [],
    "xmcgan_t2icl": ["loss/g_caption_nt_xent", "loss/g_sentence"],
    "xmcgan_scl": ["loss/g_label_supcon", "loss/g_sentence"],
    "ablation_sent": ["loss/g_sentence"],
    "ablation_word": ["loss/g_word"],
    "ablation_img": ["loss/g_image_d"],
    "ablation_sent_word": ["loss/g_sentence", "loss/g_word"],
    "ablation_sent_img": ["loss/g_sentence", "loss/g_image_d"],
    "ablation_word_img": ["loss/g_word", "loss/g_image_d"],
}
CONTRASTIVE = {"loss/g_sentence", "loss/g_word", "loss/g_image_d"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tiny_data"))
    tiny_dataset.write_dataset(data_dir, max_tokens=T, embedding_dim=D)
    return data_dir


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A (randomly initialised) dual encoder saved by path, standing in for a pretrained one."""
    return conftest.save_random_dual_encoder(str(tmp_path_factory.mktemp("encoder")),
                                             max_tokens=T, embedding_dim=D)


def _train(model_dir, data_dir, variant, encoder_dir, num_steps):
    gin.clear_config()
    params = [f"MODEL_DIR='{model_dir}'", f"DATA_DIR='{data_dir}'",
              f"train_config.ScheduleConfig.num_steps={num_steps}"]
    if variant in ("xmcgan_t2icl", "xmcgan_scl"):
        params.append(f"ENCODER_DIR='{encoder_dir}'")
    train.parse_config(["tests/tiny.gin", f"gin/variants/{variant}.gin"], params)
    try:
        return train.run_training()
    finally:
        gin.clear_config()


# The ablations differ from xmcgan only in loss weights: they run with the slow tests.
_FAST = ("xmcgan_t2icl", "xmcgan_scl", "xmcgan_no_contrastive")


@pytest.mark.parametrize("variant", [
    v if v in _FAST else pytest.param(v, marks=pytest.mark.slow) for v in sorted(VARIANT_TERMS)])
def test_variant_trains_checkpoints_and_resumes(tmp_path, tiny_data, encoder_dir, variant):
    model_dir = str(tmp_path / variant)
    first = _train(model_dir, tiny_data, variant, encoder_dir, num_steps=2)
    assert first.step == 2 and first.checkpoint_path
    second = _train(model_dir, tiny_data, variant, encoder_dir, num_steps=4)
    assert second.step == 4 and second.resumed_from == first.checkpoint_path
    logged = summaries.read_train_metrics(model_dir)[-1]
    for name in VARIANT_TERMS[variant]:
        assert np.isfinite(logged[name]), name
    for name in CONTRASTIVE - set(VARIANT_TERMS[variant]):
        if variant not in ("xmcgan", "xmcgan_t2icl", "xmcgan_scl"):
            assert name not in logged, name
    assert os.path.exists(os.path.join(model_dir, "config.gin"))


def test_t2icl_without_encoder_dir_is_a_clear_error(tmp_path, tiny_data):
    gin.clear_config()
    with pytest.raises(Exception, match="ENCODER_DIR"):
        train.parse_config(["tests/tiny.gin", "gin/variants/xmcgan_t2icl.gin"],
                           [f"MODEL_DIR='{tmp_path}'", f"DATA_DIR='{tiny_data}'"])
        train.run_training()
    gin.clear_config()
