"""Tests of xmcgan_tf.serving.server over loopback (gRPC and REST, TF Serving protocols)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.export import tiny_export
from xmcgan_tf.export import export_lib
from xmcgan_tf.export import serving_module
from xmcgan_tf.serving import server as server_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 60
MAX_BATCH = 4
CAPTIONS = ["a small red circle above a blue square", "a green star"]
SEEDED_COLUMNAR = {"signature_name": "serve_captions_seeded",
                   "inputs": {"captions": CAPTIONS, "seed": [3, 4]}}


@pytest.fixture(scope="module")
def first_module():
    return tiny_export.tiny_module(seed=0)


@pytest.fixture(scope="module")
def modules(first_module):
    """Two tiny serving modules with different weights, for versions 1 and 2."""
    return first_module, tiny_export.tiny_module(seed=1)


@pytest.fixture(scope="module")
def export_dir(first_module, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export"))
    export_lib.write_version(first_module, path)
    return path


@pytest.fixture(scope="module")
def server(export_dir):
    instance = server_lib.ModelServer(export_dir, model_name="xmcgan", grpc_port=0, rest_port=0,
                                      max_batch=MAX_BATCH, poll_seconds=0).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def expected(export_dir):
    """In-process outputs of version 1 for CAPTIONS with seeds [3, 4] and with the default."""
    model = serving_module.load(export_dir, 1).model
    seeded = model.signatures[serving_module.SERVE_CAPTIONS_SEEDED](
        captions=tf.constant(CAPTIONS), seed=tf.constant([3, 4], tf.int64))["images"].numpy()
    default = model.signatures[serving_module.SERVING_DEFAULT](
        captions=tf.constant(CAPTIONS))["images"].numpy()
    return dict(seeded=seeded, default=default)


def _rest(server, path: str, body=None, method: str | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=data,
                                     method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _grpc_request(signature: str, model: str = "xmcgan", version: int | None = None,
                  **inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        proto = value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        request.inputs[name].CopyFrom(proto)
    return request


def _seeded_grpc(captions=CAPTIONS, seeds=(3, 4), **kwargs) -> predict_pb2.PredictRequest:
    return _grpc_request(serving_module.SERVE_CAPTIONS_SEEDED, captions=list(captions),
                         seed=np.asarray(seeds, np.int64), **kwargs)


def test_grpc_and_rest_return_the_same_images(server, stub, expected):
    response = stub.Predict(_seeded_grpc(), timeout=TIMEOUT)
    from_grpc = tf.make_ndarray(response.outputs["images"])
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == serving_module.SERVE_CAPTIONS_SEEDED

    status, columnar = _rest(server, "/v1/models/xmcgan:predict", SEEDED_COLUMNAR)
    assert status == 200
    status, rows = _rest(server, "/v1/models/xmcgan/versions/1:predict", {
        "signature_name": "serve_captions_seeded",
        "instances": [{"captions": c, "seed": s} for c, s in zip(CAPTIONS, [3, 4], strict=True)]})
    assert status == 200
    for images in (from_grpc, np.asarray(columnar["outputs"], np.uint8),
                   np.asarray(rows["predictions"], np.uint8)):
        assert images.shape == (2, 64, 64, 3)
        np.testing.assert_array_equal(images, expected["seeded"])


def test_default_signature_in_both_rest_formats(server, stub, expected):
    status, rows = _rest(server, "/v1/models/xmcgan:predict", {"instances": CAPTIONS})
    assert status == 200
    np.testing.assert_array_equal(np.asarray(rows["predictions"], np.uint8), expected["default"])
    status, columnar = _rest(server, "/v1/models/xmcgan:predict", {"inputs": CAPTIONS})
    assert status == 200
    np.testing.assert_array_equal(np.asarray(columnar["outputs"], np.uint8), expected["default"])
    response = stub.Predict(_grpc_request("", captions=CAPTIONS), timeout=TIMEOUT)
    assert response.model_spec.signature_name == serving_module.SERVING_DEFAULT
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["images"]), expected["default"])


def test_status_and_metadata(server):
    status, body = _rest(server, "/v1/models/xmcgan")
    assert status == 200
    assert body == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]}
    status, body = _rest(server, "/v1/models/xmcgan/metadata")
    assert status == 200 and body["model_spec"]["version"] == "1"
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(serving_module.SIGNATURE_NAMES) <= set(signatures)
    assert set(signatures["serve_captions_seeded"]["inputs"]) == {"captions", "seed"}

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "xmcgan"
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            request, timeout=TIMEOUT)
        assert [(s.version, s.state) for s in response.model_version_status] == [
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "xmcgan"
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
            request, timeout=TIMEOUT)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        assert set(serving_module.SIGNATURE_NAMES) <= set(signature_map.signature_def)


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "JSON Parse error"),
    ([1, 2], 400, "JSON object"),
    ({"instances": []}, 400, "batch size 0"),
    ({"inputs": {"captions": []}}, 400, "batch size 0"),
    ({"instances": ["x"] * (MAX_BATCH + 1)}, 400, f"exceeds the server's max_batch {MAX_BATCH}"),
    ({"instances": [1, 2]}, 400, "expects strings"),
    ({"signature_name": "serve_captions_seeded", "inputs": {"captions": ["x"], "seed": ["1"]}},
     400, "expects int64"),
    ({"signature_name": "serve_captions_seeded", "inputs": {"captions": ["x"], "seed": [1.5]}},
     400, "expects int64"),
    ({"signature_name": "serve_captions_seeded", "inputs": {"captions": ["x", "y"], "seed": [1]}},
     400, "different batch sizes"),
    ({"signature_name": "serve_captions_seeded", "inputs": {"captions": ["x"]}}, 400, "missing"),
    ({"signature_name": "serve_captions_seeded", "instances": ["x"]}, 400, "each instance"),
    ({"signature_name": "classify", "instances": ["x"]}, 400, "not found in signature def"),
    ({"inputs": ["x"], "instances": ["x"]}, 400, "exactly one of"),
    ({"inputs": [["x"]]}, 400, "shape"),
    ({"signature_name": "serve_embeddings", "inputs": {"words": [[[0.0]]], "word_mask": [[1.0]]}},
     400, "shape"),
])
def test_malformed_rest_requests_get_errors_and_the_server_keeps_serving(
        server, expected, body, status, message):
    got_status, got = _rest(server, "/v1/models/xmcgan:predict", body)
    assert got_status == status
    assert set(got) == {"error"} and message in got["error"]
    good_status, good = _rest(server, "/v1/models/xmcgan:predict", {"instances": CAPTIONS[:1]})
    assert good_status == 200
    np.testing.assert_array_equal(np.asarray(good["predictions"], np.uint8),
                                  expected["default"][:1])


@pytest.mark.parametrize("path, method, status", [
    ("/v1/models/other:predict", "POST", 404),
    ("/v1/models/xmcgan/versions/9:predict", "POST", 404),
    ("/v1/models/xmcgan/labels/stable:predict", "POST", 404),
    ("/v1/models/xmcgan:classify", "POST", 501),
    ("/v2/models/xmcgan:predict", "POST", 404),
    ("/v1/models/xmcgan/versions/9", "GET", 404),
])
def test_unknown_models_versions_and_paths(server, path, method, status):
    body = {"instances": ["x"]} if method == "POST" else None
    got_status, got = _rest(server, path, body, method)
    assert got_status == status and set(got) == {"error"}


@pytest.mark.parametrize("request_fn, code, message", [
    (lambda: _grpc_request("serve_captions_seeded", captions=["x"], seed=np.int32([1])),
     grpc.StatusCode.INVALID_ARGUMENT, "expects int64 but int32"),
    (lambda: _grpc_request("", captions=tf.make_tensor_proto([], dtype=tf.string)),
     grpc.StatusCode.INVALID_ARGUMENT, "batch size 0"),
    (lambda: _grpc_request("", captions=["x"] * (MAX_BATCH + 1)),
     grpc.StatusCode.INVALID_ARGUMENT, "max_batch"),
    (lambda: _grpc_request("nope", captions=["x"]), grpc.StatusCode.INVALID_ARGUMENT, "nope"),
    (lambda: _grpc_request("", captions=["x"], seed=np.int64([1])),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown ['seed']"),
    (lambda: _grpc_request("", captions="x"), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    (lambda: _grpc_request("", model="other", captions=["x"]), grpc.StatusCode.NOT_FOUND, "other"),
    (lambda: _seeded_grpc(version=7), grpc.StatusCode.NOT_FOUND, "Specific(xmcgan, 7)"),
])
def test_malformed_grpc_requests_get_errors_and_the_server_keeps_serving(
        stub, expected, request_fn, code, message):
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request_fn(), timeout=TIMEOUT)
    assert error.value.code() == code
    assert message in error.value.details()
    response = stub.Predict(_seeded_grpc(), timeout=TIMEOUT)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["images"]), expected["seeded"])


def test_an_error_leaves_the_keep_alive_connection_usable(server, expected):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=TIMEOUT)
    try:
        connection.request("POST", "/v1/models/other:predict", body=json.dumps({"instances": ["x"]}))
        response = connection.getresponse()
        assert response.status == 404 and "error" in json.loads(response.read())
        connection.request("POST", "/v1/models/xmcgan:predict",
                           body=json.dumps({"instances": CAPTIONS[:1]}))
        response = connection.getresponse()
        assert response.status == 200
        np.testing.assert_array_equal(
            np.asarray(json.loads(response.read())["predictions"], np.uint8),
            expected["default"][:1])
    finally:
        connection.close()


def test_binds_loopback_only(server):
    assert server.host == "127.0.0.1"
    assert server._http_server.server_address[0] == "127.0.0.1"


def test_newest_version_is_the_default_and_older_versions_stay_addressable(modules, tmp_path):
    export_dir = str(tmp_path / "export")
    export_lib.write_version(modules[0], export_dir)
    with server_lib.ModelServer(export_dir, grpc_port=0, rest_port=0, poll_seconds=0.2) as server:
        export_lib.write_version(modules[1], export_dir)
        deadline = time.monotonic() + TIMEOUT
        while server.manager.loaded_versions() != [1, 2]:
            assert time.monotonic() < deadline, "version 2 was not picked up"
            time.sleep(0.2)
        _, newest = _rest(server, "/v1/models/xmcgan:predict", SEEDED_COLUMNAR)
        _, v1 = _rest(server, "/v1/models/xmcgan/versions/1:predict", SEEDED_COLUMNAR)
        _, v2 = _rest(server, "/v1/models/xmcgan/versions/2:predict", SEEDED_COLUMNAR)
        assert newest == v2 and newest != v1
        status, body = _rest(server, "/v1/models/xmcgan")
        assert [s["version"] for s in body["model_version_status"]] == ["2", "1"]
        status, body = _rest(server, "/v1/models/xmcgan/versions/1")
        assert status == 200 and [s["version"] for s in body["model_version_status"]] == ["1"]


def test_a_version_not_loaded_at_start_loads_when_named(modules, tmp_path):
    export_dir = str(tmp_path / "export")
    export_lib.write_version(modules[0], export_dir)
    export_lib.write_version(modules[1], export_dir)
    with server_lib.ModelServer(export_dir, grpc_port=None, rest_port=0, poll_seconds=0) as server:
        assert server.manager.loaded_versions() == [2]
        status, _ = _rest(server, "/v1/models/xmcgan/versions/1:predict", {"instances": ["x"]})
        assert status == 200
        assert server.manager.loaded_versions() == [1, 2]


def test_start_refuses_a_directory_without_versions(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model versions"):
        server_lib.ModelServer(str(tmp_path), grpc_port=0, rest_port=0).start()


def test_command_line_server_serves_and_stops_on_sigterm(export_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "xmcgan_tf.serving.server", f"--model_base_path={export_dir}",
         "--model_name=xmcgan", "--port=0", "--rest_api_port=0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        line = process.stdout.readline()  # printed once both endpoints listen
        match = re.search(r"gRPC 127\.0\.0\.1:(\d+), REST 127\.0\.0\.1:(\d+)", line)
        assert match, line
        with urllib.request.urlopen(f"http://127.0.0.1:{match[2]}/v1/models/xmcgan",
                                    timeout=TIMEOUT) as response:
            assert json.loads(response.read())["model_version_status"][0]["state"] == "AVAILABLE"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
