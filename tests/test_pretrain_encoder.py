"""End-to-end tests of dual-encoder pretraining (`xmcgan_tf.pretrain_encoder`) on the
synthetic set: DAMSM, T2I_CL and SCL variants through the same entry point."""

import json
import os

import gin
import numpy as np
import pytest

from xmcgan_tf import gin_config
from xmcgan_tf import pretrain_encoder
from xmcgan_tf.models import dual_encoder_io


def _run(model_dir, data_dir, variant, num_steps, extra=()):
    gin.clear_config()
    gin_config.parse_config(
        [f"experiments/synthetic_encoder_{variant}_64.gin"],
        [f"MODEL_DIR='{model_dir}'", f"DATA_DIR='{data_dir}'",
         f"pretrain_lib.pretrain.num_steps={num_steps}",
         "pretrain_lib.pretrain.steps_per_checkpoint=10",
         "pretrain_lib.pretrain.batch_size=16",
         "pretrain_lib.pretrain.validation_batches=2",
         "pretrain_lib.pretrain.shuffle_buffer=64",
         "dual_encoder.DualEncoder.image_width=8",
         "dual_encoder.DualEncoder.joint_dim=32",
         "dual_encoder.DualEncoder.text_hidden_dim=64", *extra])
    try:
        return pretrain_encoder.run_pretraining()
    finally:
        gin.clear_config()


@pytest.mark.parametrize("variant,term", [("t2icl", "loss/caption_nt_xent"),
                                          ("scl", "loss/label_supcon")])
def test_variant_trains_saves_and_resumes(tmp_path, synthetic_dataset_dir, variant, term):
    model_dir = str(tmp_path / variant)
    result = _run(model_dir, synthetic_dataset_dir, variant, num_steps=10)
    assert result.step == 10
    assert term in result.train_metrics and np.isfinite(result.train_metrics[term])
    encoder = dual_encoder_io.load_dual_encoder(model_dir)
    assert not encoder.trainable
    assert os.path.exists(os.path.join(model_dir, "config.gin"))
    resumed = _run(model_dir, synthetic_dataset_dir, variant, num_steps=20)
    assert resumed.step == 20
    lines = open(os.path.join(model_dir, "metrics", "pretrain.jsonl")).read().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [10, 20]


@pytest.mark.slow
def test_damsm_pretraining_retrieval_rises_above_chance(tmp_path, synthetic_dataset_dir):
    # Validation retrieval is image->text top-1 within a batch of 16: chance is 1/16.
    result = _run(str(tmp_path / "damsm"), synthetic_dataset_dir, "damsm", num_steps=300,
                  extra=["pretrain_lib.pretrain.steps_per_checkpoint=100",
                         "pretrain_lib.pretrain.learning_rate=1e-3"])
    assert result.val_metrics["retrieval/image_to_text_acc"] > 4 / 16


def test_missing_binding_is_a_clear_error(tmp_path):
    gin.clear_config()
    gin_config.parse_config(["runs/pretrain_encoder.gin"],
                            [f"MODEL_DIR='{tmp_path}'", "DATA_DIR='x'"])
    try:
        with pytest.raises(gin_config.GinConfigError, match="max_tokens"):
            pretrain_encoder.run_pretraining()
    finally:
        gin.clear_config()


@pytest.mark.parametrize("variant,form,masked", [("t2icl", "attngan", True),
                                                 ("damsm", "xmcgan", False),
                                                 ("scl", "xmcgan", False)])
def test_damsm_form_of_each_variant(variant, form, masked):
    # T2I_CL follows the released AttnGAN/T2I_CL DAMSM; the judge (damsm) and SCL keep the
    # XMC-GAN word-region score. Either is a gin binding away.
    gin.clear_config()
    try:
        gin_config.parse_config([f"experiments/synthetic_encoder_{variant}_64.gin"],
                                ["MODEL_DIR='x'", "DATA_DIR='y'"])
        query = "dual_encoder_pretraining.DualEncoderPretraining."
        assert gin.query_parameter(query + "damsm_form") == form
        assert gin.query_parameter(query + "mask_same_class") is masked
    finally:
        gin.clear_config()
