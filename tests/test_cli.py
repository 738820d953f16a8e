"""Tests of xmcgan_tf.cli and of the entry points' handling of errors a user can fix."""

import os
import socket
import subprocess
import sys

import pytest

from xmcgan_tf import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_listed_errors_exit_with_the_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        with cli.exit_on(FileNotFoundError, KeyError):
            raise FileNotFoundError("no run.json in /runs/x")
    assert exit_info.value.code == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: no run.json in /runs/x\n"


def test_exit_code_is_configurable_and_other_errors_propagate():
    with pytest.raises(SystemExit) as exit_info:
        with cli.exit_on(FloatingPointError, code=cli.EXIT_NON_FINITE):
            raise FloatingPointError("loss/g_total is NaN")
    assert exit_info.value.code == 1
    with pytest.raises(ZeroDivisionError):
        with cli.exit_on(FileNotFoundError):
            raise ZeroDivisionError


@pytest.mark.parametrize("command, message", [
    (["xmcgan_tf.evaluate", "--model_dir={missing}", "--metrics=fid"], "run.json"),
    (["xmcgan_tf.export", "--model_dir={missing}", "--export_dir={tmp}/export"],
     "run.json"),
    (["xmcgan_tf.generate", "--export_dir={missing}", "a red circle"], "no model versions"),
])
def test_entry_points_name_a_missing_directory_without_a_traceback(tmp_path, command, message):
    missing = str(tmp_path / "missing")
    args = [a.format(missing=missing, tmp=tmp_path) for a in command]
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == cli.EXIT_USER_ERROR, result.stderr[-3000:]
    assert "error: " in result.stderr and message in result.stderr
    assert missing in result.stderr
    assert "Traceback" not in result.stderr


def _one_line_error(args, tmp_path, **env):
    environment = {**os.environ, "PYTHONPATH": REPO, **env}
    result = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == cli.EXIT_USER_ERROR, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def test_a_gin_syntax_error_is_one_line(tmp_path):
    line = _one_line_error(["xmcgan_tf.train", "--gin_file=tests/tiny.gin",
                            "--gin_param=train_config.ScheduleConfig.num_steps=("], tmp_path)
    assert "bad gin configuration" in line


def _coco_command(coco_dir, tmp_path, text_encoder_dir):
    return ["data_tools.coco_to_tfrecord", f"--coco_dir={coco_dir}", "--splits=train=train2014",
            f"--output_dir={tmp_path / 'out'}",
            f"--text_preprocessor={os.path.join(text_encoder_dir, 'preprocess')}",
            f"--text_encoder={os.path.join(text_encoder_dir, 'encoder')}", "--max_tokens=8"]


def test_captions_json_that_does_not_parse_is_one_line(tmp_path, offline_text_encoder_dir):
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "captions_train2014.json").write_text("{not json")
    line = _one_line_error(_coco_command(tmp_path / "coco", tmp_path, offline_text_encoder_dir),
                           tmp_path)
    assert "captions_train2014.json" in line


def test_a_missing_coco_dir_and_a_missing_text_encoder_are_one_line(tmp_path,
                                                                    offline_text_encoder_dir):
    line = _one_line_error(_coco_command(tmp_path / "none", tmp_path, offline_text_encoder_dir),
                           tmp_path)
    assert str(tmp_path / "none") in line
    line = _one_line_error(["data_tools.synthetic_scenes", f"--output_dir={tmp_path / 'out'}",
                            "--num_train=4", "--num_val=2",
                            f"--text_preprocessor={tmp_path / 'missing'}",
                            f"--text_encoder={tmp_path / 'missing'}"], tmp_path)
    assert "missing" in line


def test_an_unwritable_export_dir_fails_before_loading(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the export directory should go")
    line = _one_line_error(["xmcgan_tf.export", f"--model_dir={tmp_path / 'run'}",
                            f"--export_dir={blocker / 'export'}"], tmp_path)
    assert "cannot write to the export directory" in line


def test_the_client_reports_a_server_that_is_down_in_one_line(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for protocol in ("grpc", "rest"):
        line = _one_line_error(["xmcgan_tf.serving.client", f"--server=127.0.0.1:{port}",
                                f"--protocol={protocol}", "--timeout=5",
                                f"--output={tmp_path / 'grid.png'}", "a red circle"], tmp_path)
        assert str(port) in line or "unreachable" in line or "UNAVAILABLE" in line


def _tiny_train(tmp_path, *params):
    from tests.training import tiny_dataset

    data_dir = str(tmp_path / "data")
    tiny_dataset.write_dataset(data_dir, max_tokens=6, embedding_dim=16)
    return ["xmcgan_tf.train", "--gin_file=tests/tiny.gin",
            f"--gin_param=MODEL_DIR='{tmp_path / 'run'}'", f"--gin_param=DATA_DIR='{data_dir}'",
            *[f"--gin_param={p}" for p in params]], data_dir


def test_a_bad_training_value_is_one_line(tmp_path):
    # ValueErrors of train_lib's checks (e.g. a batch that replicas do not divide) end the
    # same way.
    command, _ = _tiny_train(tmp_path, "train_config.ScheduleConfig.batch_size=0")
    assert "batch_size" in _one_line_error(command, tmp_path)


def test_a_shard_truncated_mid_run_is_one_line_naming_it(tmp_path):
    command, data_dir = _tiny_train(tmp_path, "train_config.ScheduleConfig.num_steps=50")
    shard = sorted(p for p in os.listdir(data_dir) if p.startswith("train.tfrecord"))[-1]
    path = os.path.join(data_dir, shard)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])  # the first batches come from intact records
    line = _one_line_error(command, tmp_path)
    assert shard in line
