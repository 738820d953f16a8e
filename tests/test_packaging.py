"""The installed package: console scripts for every entry point, `--help` that lists the flags
an entry point uses, imports from any directory, and a quiet console."""

import ast
import logging
import os
import subprocess
import sys
import tomllib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _scripts() -> dict[str, str]:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def _run(command, cwd, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run(command, cwd=cwd, env={**environment, **env}, capture_output=True,
                          text=True, timeout=300)


def test_every_entry_point_module_has_a_console_script():
    targets = {value.split(":")[0] for value in _scripts().values()}
    modules = set()
    for package in ("xmcgan_tf", "data_tools"):
        for directory, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    if 'if __name__ == "__main__":' in f.read():
                        path = os.path.relpath(os.path.join(directory, name[:-3]), REPO)
                        modules.add(path.replace(os.sep, "."))
    assert modules == targets
    for value in _scripts().values():  # parsed, not imported: entry points define flags
        module, function = value.split(":")
        with open(os.path.join(REPO, *module.split(".")) + ".py", encoding="utf-8") as f:
            tree = ast.parse(f.read())
        assert function in {node.name for node in tree.body
                            if isinstance(node, ast.FunctionDef)}, value


@pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "xmcgan-train")),
                    reason="the package is not installed in this environment "
                           "(scripts/setup_env.sh installs it)")
def test_console_script_help_lists_the_gin_flags_outside_the_repository(tmp_path):
    result = _run([os.path.join(BIN, "xmcgan-train"), "--help"], cwd=tmp_path)
    assert "Trains an XMC-GAN" in result.stdout  # the module's docstring as usage
    for flag in ("--gin_file", "--gin_param", "--strategy"):
        assert flag in result.stdout
    assert result.stderr == ""


def test_module_help_lists_the_gin_flags_and_the_console_is_quiet(tmp_path):
    result = _run([sys.executable, "-m", "xmcgan_tf.pretrain_encoder", "--help"],
                  cwd=tmp_path, PYTHONPATH=REPO)
    assert "--gin_file" in result.stdout and "--gin_param" in result.stdout
    assert result.stderr == ""  # no TensorFlow start-up lines


def test_verbosity_brings_back_tensorflow_start_up_logs(tmp_path):
    code = "import xmcgan_tf, tensorflow as tf; print(tf.constant(2) + 1)"
    quiet = _run([sys.executable, "-c", code], cwd=tmp_path, PYTHONPATH=REPO)
    loud = _run([sys.executable, "-c", code, "--verbosity=1"], cwd=tmp_path, PYTHONPATH=REPO)
    assert quiet.returncode == loud.returncode == 0
    assert "3" in quiet.stdout and quiet.stderr == ""
    assert "oneDNN" in loud.stderr or "cuda" in loud.stderr.lower()


def test_quiet_console_drops_library_info_lines_but_keeps_the_tools():
    from xmcgan_tf import console

    keep = console.LibraryInfoFilter()

    def record(path, level=logging.INFO):
        return logging.LogRecord("absl", level, path, 1, "message", None, None)

    library = "/x/.venv/lib/python3.11/site-packages/tensorflow/python/checkpoint/saver.py"
    assert not keep.filter(record(library))
    assert keep.filter(record(library, logging.WARNING))
    assert keep.filter(record(os.path.join(REPO, "xmcgan_tf", "progress.py")))
    assert not keep.filter(record("/x/site-packages/keras/src/trainers/trainer.py"))
