"""The demo's CPU recipe draws what the caption says (slow: about 15 minutes on 2 cores).

Trains `gin/experiments/synthetic_xmcgan_64_demo.gin` at its own size (2,000 synthetic scenes,
its step count) and scores G_ema's images of 500 validation captions with a domain evaluator
trained as the demo trains it. The recall of the objects the captions name must be clearly
above chance (≥ 0.05; images without the named objects score about 0.02, the code before the
fidelity fixes 0.000); the target is ≥ 0.3, which the recipe does not reach yet (about 0.1 after
the demo's steps, BENCHMARKS.md "Fidelity"): below it the test reports an expected failure.
"""

import gin
import pytest

from tests import conftest
from xmcgan_tf import train
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.evaluation import eval_lib

MIN_OBJECT_ACCURACY = 0.05
TARGET_OBJECT_ACCURACY = 0.3


@pytest.mark.slow
def test_demo_recipe_object_accuracy_well_above_chance(tmp_path, offline_text_encoder_dir):
    data_dir, model_dir = str(tmp_path / "data"), str(tmp_path / "run")
    conftest.write_synthetic_dataset(data_dir, offline_text_encoder_dir, num_train=2000,
                                     num_val=500, num_shards=4)
    evaluator_dir = str(tmp_path / "evaluator")
    domain_evaluator.train(data_dir, evaluator_dir, epochs=8)

    gin.clear_config()
    try:
        train.parse_config(["experiments/synthetic_xmcgan_64_demo.gin"],
                           [f"MODEL_DIR = {model_dir!r}", f"DATA_DIR = {data_dir!r}"])
        train.run_training()
    finally:
        gin.clear_config()

    (result,) = eval_lib.evaluate(model_dir, metrics=["objacc"], num_samples=500,
                                  evaluator_dir=evaluator_dir, generators=["ema"],
                                  real_reference=False, write=False)
    print(f"demo recipe: EMA object accuracy {result.value:.3f} at step {result.step}")
    assert result.value >= MIN_OBJECT_ACCURACY, result
    if result.value < TARGET_OBJECT_ACCURACY:
        pytest.xfail(f"object accuracy {result.value:.3f} < target {TARGET_OBJECT_ACCURACY}")
