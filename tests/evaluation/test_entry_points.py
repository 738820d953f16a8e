"""`python -m xmcgan_tf.train_evaluator` and `python -m xmcgan_tf.evaluate` as a user runs them."""

import os
import subprocess
import sys

from tests.evaluation import conftest
from xmcgan_tf.evaluation import domain_evaluator
from xmcgan_tf.evaluation import registry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_train_evaluator_reports_accuracy_and_fails_below_the_bar(scenes_dir, tmp_path):
    output = str(tmp_path / "evaluator")
    done = _run("xmcgan_tf.train_evaluator", f"--data_dir={scenes_dir}", f"--output_dir={output}",
                "--epochs=1", "--width=4", "--max_train_examples=32", "--max_val_examples=16",
                "--nojit_compile", "--min_accuracy=0.999")
    assert done.returncode == 1, done.stderr[-2000:]  # one epoch on 32 images is not enough
    assert "| attribute | accuracy |" in done.stdout and "| shape |" in done.stdout
    assert "below --min_accuracy=0.999" in done.stderr
    assert os.path.exists(os.path.join(output, domain_evaluator.WEIGHTS_FILE))


def test_evaluate_prints_a_markdown_table(scenes_dir, trained_evaluator, tmp_path):
    model_dir = str(tmp_path / "run")
    os.makedirs(model_dir)
    conftest.write_run(model_dir, scenes_dir, steps=[5])
    done = _run("xmcgan_tf.evaluate", f"--model_dir={model_dir}/checkpoints",
                "--metrics=is,objacc", "--num_samples=8", f"--evaluator_dir={trained_evaluator[0]}",
                "--generators=ema", f"--cache_dir={tmp_path / 'cache'}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| protocol | ema | real |" in done.stdout
    assert "| is_domain_val_8 |" in done.stdout and "| objacc_domain_val_8 |" in done.stdout
    assert registry.read_reports(model_dir, "objacc_domain_val_8")[0]["step"] == 5
    # Progress: a bar (count of batches, ETA) for the generated and for the real images.
    assert "ema images: 100%" in done.stderr and "real val images, domain" in done.stderr
