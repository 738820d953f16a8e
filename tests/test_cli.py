"""Tests of xmcgan_tf.cli and of the entry points' handling of errors a user can fix."""

import os
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
