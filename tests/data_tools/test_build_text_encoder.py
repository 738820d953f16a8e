"""Tests of data_tools/build_text_encoder.py beyond the numerics covered in tests/text/."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from data_tools import build_text_encoder

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE_PATH = os.path.join(REPO_ROOT, "tests", "text", "reference_outputs.json")

_FRESH_PROCESS_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # registers the WordPiece ops
preprocess = hub.load(sys.argv[1] + "/preprocess")
encoder = hub.load(sys.argv[1] + "/encoder")
inputs = preprocess(tf.constant(["a red bird"]))
outputs = encoder(inputs)
print(json.dumps({
    "ids": inputs["input_word_ids"].numpy()[0, :6].tolist(),
    "pooled": outputs["pooled_output"].numpy()[0, :4].tolist(),
    "sequence_shape": outputs["sequence_output"].shape.as_list(),
    "num_trainable": len(encoder.trainable_variables),
}))
"""


def _run(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
    return subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, **kwargs)


def test_modules_load_with_hub_in_a_fresh_process(offline_text_encoder_dir):
    result = _run(
        [sys.executable, "-c", _FRESH_PROCESS_SCRIPT, offline_text_encoder_dir], timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["ids"] == [101, 1037, 2417, 4743, 102, 0]
    assert loaded["sequence_shape"] == [1, build_text_encoder.DEFAULT_SEQ_LENGTH, 384]
    assert loaded["num_trainable"] == 103
    with open(REFERENCE_PATH, encoding="utf-8") as f:
        reference = json.load(f)
    assert reference["sentences"][0] == "a red bird"
    expected = reference["pooled_output"][0][:4]
    assert max(abs(a - b) for a, b in zip(loaded["pooled"], expected, strict=True)) < 1e-4


def test_help_lists_the_flags():
    result = _run(
        [sys.executable, "-m", "data_tools.build_text_encoder", "--helpshort"], timeout=300
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for flag in ("--output_dir", "--seq_length", "--weights_dir"):
        assert flag in result.stdout
    assert "TF-Hub BERT" in result.stdout


def test_find_weights_dir_does_not_import_the_package():
    imported_before = build_text_encoder.WEIGHTS_PACKAGE in sys.modules
    weights_dir = build_text_encoder.find_weights_dir()
    for name in (
        build_text_encoder.WEIGHTS_FILE,
        build_text_encoder.VOCAB_FILE,
        build_text_encoder.CONFIG_FILE,
    ):
        assert os.path.isfile(os.path.join(weights_dir, name))
    assert (build_text_encoder.WEIGHTS_PACKAGE in sys.modules) == imported_before


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks"):
        build_text_encoder.build_text_encoder(str(tmp_path / "out"), weights_dir=str(tmp_path))
    with pytest.raises(ValueError, match="seq_length"):
        build_text_encoder.build_text_encoder(str(tmp_path / "out"), seq_length=1)
    assert not os.path.exists(tmp_path / "out")


def test_save_atomically_replaces_and_leaves_no_temporary_dirs(tmp_path):
    export_dir = str(tmp_path / "module")
    for value in (1.0, 2.0):
        module = tf.Module()
        module.value = tf.Variable(value)
        build_text_encoder.save_atomically(module, export_dir)
        assert float(tf.saved_model.load(export_dir).value) == value
    assert os.listdir(tmp_path) == ["module"]


def test_bert_config_rejects_other_architectures(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "bert", "hidden_act": "relu"}))
    with pytest.raises(ValueError, match="hidden_act"):
        build_text_encoder.BertConfig.from_json_file(str(path))
