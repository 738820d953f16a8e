"""Tests of xmcgan_tf.serving.client against the local server (gRPC and REST)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.export import tiny_export
from xmcgan_tf import grids
from xmcgan_tf.export import serving_module
from xmcgan_tf.serving import client
from xmcgan_tf.serving import server as server_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPTIONS = ["a small red circle above a blue square", "a green star"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export"))
    tiny_export.write_tiny_export(path, seed=0)
    return path


@pytest.fixture(scope="module")
def server(export_dir):
    with server_lib.ModelServer(export_dir, grpc_port=0, rest_port=0, poll_seconds=0) as instance:
        yield instance


@pytest.fixture(scope="module")
def model(export_dir):
    return serving_module.load(export_dir).model


def _addresses(server) -> dict[str, str]:
    return {"grpc": f"127.0.0.1:{server.grpc_port}", "rest": f"127.0.0.1:{server.rest_port}"}


@pytest.mark.parametrize("protocol", client.PROTOCOLS)
def test_predict_matches_the_saved_model(server, model, protocol):
    address = _addresses(server)[protocol]
    seeded = client.predict(address, CAPTIONS, seeds=[3, 4], protocol=protocol, timeout=60)
    expected = model.signatures[serving_module.SERVE_CAPTIONS_SEEDED](
        captions=tf.constant(CAPTIONS), seed=tf.constant([3, 4], tf.int64))["images"].numpy()
    assert seeded.dtype == np.uint8 and seeded.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(seeded, expected)
    default = client.predict(address, CAPTIONS, protocol=protocol, version=1, timeout=60)
    np.testing.assert_array_equal(default, client.predict(address, CAPTIONS, seeds=[0, 0],
                                                          protocol=protocol, timeout=60))


@pytest.mark.parametrize("protocol", client.PROTOCOLS)
def test_server_errors_become_client_errors(server, protocol):
    address = _addresses(server)[protocol]
    with pytest.raises(client.ServingClientError, match="not served|NOT_FOUND|404"):
        client.predict(address, CAPTIONS, protocol=protocol, model_name="other", timeout=60)
    with pytest.raises(client.ServingClientError, match="Specific"):
        client.predict(address, CAPTIONS, protocol=protocol, version=9, timeout=60)


@pytest.mark.parametrize("protocol", client.PROTOCOLS)
def test_unreachable_server(protocol):
    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(client.ServingClientError):
        client.predict(f"127.0.0.1:{port}", ["x"], protocol=protocol, timeout=5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no captions"):
        client.predict("127.0.0.1:1", [], timeout=1)
    with pytest.raises(ValueError, match="one seed per caption"):
        client.predict("127.0.0.1:1", ["a", "b"], seeds=[1], timeout=1)
    with pytest.raises(TypeError, match="not one string"):
        client.predict("127.0.0.1:1", "a red circle", timeout=1)
    with pytest.raises(ValueError, match="protocol"):
        client.predict("127.0.0.1:1", ["a"], protocol="http", timeout=1)
    with pytest.raises(ValueError, match="comma-separated"):
        client.parse_seeds("1,x")


def test_expand_and_parse_seeds():
    assert client.expand(["a", "b"], [0, 7]) == (["a", "a", "b", "b"], [0, 7, 0, 7])
    assert client.parse_seeds("0, 1,2") == [0, 1, 2]
    assert client.parse_seeds("") is None


def test_captioned_grid_has_one_row_per_caption_and_one_column_per_seed():
    images = np.zeros((2, 3, 8, 8, 3), np.uint8)
    images[1] = 255
    grid = client.captioned_grid(images, ["a red circle", "a blue star"], [0, 1, 2])
    np.testing.assert_array_equal(grid, grids.image_grid(
        images.reshape(6, 8, 8, 3), [f"{c} (seed {s})" for c in ("a red circle", "a blue star")
                                     for s in (0, 1, 2)], columns=3))
    with pytest.raises(ValueError, match="rows, cols"):
        client.captioned_grid(images[0], ["a"], [0])
    with pytest.raises(ValueError, match="do not match"):
        client.captioned_grid(images, ["a"], [0, 1, 2])


def test_command_line_client_writes_the_grid(server, model, tmp_path):
    output = tmp_path / "grid.png"
    result = subprocess.run(
        [sys.executable, "-m", "xmcgan_tf.serving.client", f"--server=127.0.0.1:{server.rest_port}",
         "--protocol=rest", "--model_name=xmcgan", "--seeds=0,1,2", f"--output={output}",
         *CAPTIONS],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    grid = tf.io.decode_png(tf.io.read_file(str(output))).numpy()
    seeded = model.signatures[serving_module.SERVE_CAPTIONS_SEEDED]
    expected = np.stack([seeded(captions=tf.constant([c] * 3), seed=tf.constant(
        [0, 1, 2], tf.int64))["images"].numpy() for c in CAPTIONS])  # [2, 3, 64, 64, 3]
    np.testing.assert_array_equal(grid, client.captioned_grid(expected, CAPTIONS, [0, 1, 2]))
