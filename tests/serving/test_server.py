"""Tests of xmcgan_tf.serving.server over loopback (gRPC and REST, TF Serving protocols)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
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
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.export import tiny_export
from xmcgan_tf.export import export_lib
from xmcgan_tf.export import serving_module
from xmcgan_tf.serving import errors
from xmcgan_tf.serving import model_config
from xmcgan_tf.serving import models as models_lib
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


def _declared(value, shape) -> tensor_pb2.TensorProto:
    """A TensorProto of `value` whose declared shape is `shape` (a lie when they differ)."""
    proto = tf.make_tensor_proto(value)
    del proto.tensor_shape.dim[:]
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _label_grpc(label: str) -> predict_pb2.PredictRequest:
    request = _seeded_grpc()
    request.model_spec.version_label = label
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
    ({"instances": ["\ud800"]}, 400, "not valid Unicode"),
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
    ("/v1/models/xmcgan/labels/stable:predict", "POST", 400),
    ("/v1/models/xmcgan/versions/%C2%B2:predict", "POST", 400),
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
    (lambda: _grpc_request("nope", captions=["x"]), grpc.StatusCode.FAILED_PRECONDITION, "nope"),
    (lambda: _grpc_request("", captions=_declared(["x"], [30_000_000])),
     grpc.StatusCode.INVALID_ARGUMENT, "exceeds the server's max_batch"),
    (lambda: _grpc_request("", captions=_declared(["x", "y"], [3])),
     grpc.StatusCode.INVALID_ARGUMENT, "declares shape [3] (3 values) but carries 2"),
    (lambda: _grpc_request("serve_embeddings", words=_declared(np.zeros([1, 1, 1], np.float32),
                                                                [20000, 24, 384]),
                           word_mask=np.ones([1, tiny_export.MAX_TOKENS], np.float32)),
     grpc.StatusCode.INVALID_ARGUMENT, "words"),
    (lambda: _grpc_request("", captions=["x"], seed=np.int64([1])),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown ['seed']"),
    (lambda: _grpc_request("", captions="x"), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    (lambda: _grpc_request("", model="other", captions=["x"]), grpc.StatusCode.NOT_FOUND, "other"),
    (lambda: _seeded_grpc(version=7), grpc.StatusCode.NOT_FOUND, "Specific(xmcgan, 7)"),
    (lambda: _label_grpc("stable"), grpc.StatusCode.INVALID_ARGUMENT, "version label"),
])
def test_malformed_grpc_requests_get_errors_and_the_server_keeps_serving(
        stub, expected, request_fn, code, message):
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request_fn(), timeout=TIMEOUT)
    assert error.value.code() == code
    assert message in error.value.details()
    response = stub.Predict(_seeded_grpc(), timeout=TIMEOUT)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["images"]), expected["seeded"])


def test_a_version_that_is_a_superscript_digit_is_a_bad_request(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=TIMEOUT) as raw:
        raw.sendall(b"GET /v1/models/xmcgan/versions/\xb2 HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"is not an integer" in answer


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


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_newest_version_replaces_the_older_one_by_default(modules, tmp_path):
    export_dir = str(tmp_path / "export")
    export_lib.write_version(modules[0], export_dir)
    with server_lib.ModelServer(export_dir, grpc_port=0, rest_port=0, poll_seconds=0.1) as server:
        versions = server.models.model("xmcgan")
        export_lib.write_version(modules[1], export_dir)
        _wait_for(lambda: versions.loaded_versions() == [2], "version 2 did not replace 1")
        _, newest = _rest(server, "/v1/models/xmcgan:predict", SEEDED_COLUMNAR)
        status, v2 = _rest(server, "/v1/models/xmcgan/versions/2:predict", SEEDED_COLUMNAR)
        assert status == 200 and newest == v2
        status, body = _rest(server, "/v1/models/xmcgan/versions/1:predict", SEEDED_COLUMNAR)
        assert status == 404 and "Specific(xmcgan, 1)" in body["error"]
        # Deleting the served version's directory unloads it; the older one comes back.
        shutil.rmtree(os.path.join(export_dir, "2"))
        _wait_for(lambda: versions.loaded_versions() == [1], "version 2 was not unloaded")
        status, body = _rest(server, "/v1/models/xmcgan")
        assert [s["version"] for s in body["model_version_status"]] == ["1"]


def test_model_config_file_serves_several_models_with_policies_and_labels(modules, tmp_path):
    for name, module_ids in (("one", (0, 1, 0)), ("two", (1,))):
        for index in module_ids:
            export_lib.write_version(modules[index], str(tmp_path / name))
    config = tmp_path / "models.config"
    config.write_text("""
        model_config_list {
          config { name: "first" base_path: "one" model_platform: "tensorflow"
                   model_version_policy { specific { versions: 1 versions: 3 } }
                   version_labels { key: "stable" value: 1 }
                   version_labels { key: "canary" value: 3 } }
          config { name: "second" base_path: "two" }
        }""")
    specs = model_config.read(str(config))
    with server_lib.ModelServer(specs=specs, config_file=str(config), grpc_port=0, rest_port=0,
                                poll_seconds=0.1) as server:
        assert server.models.sync() == {"first": [1, 3], "second": [1]}
        _, stable = _rest(server, "/v1/models/first/labels/stable:predict", SEEDED_COLUMNAR)
        _, v1 = _rest(server, "/v1/models/first/versions/1:predict", SEEDED_COLUMNAR)
        _, canary = _rest(server, "/v1/models/first/labels/canary:predict", SEEDED_COLUMNAR)
        _, second = _rest(server, "/v1/models/second:predict", SEEDED_COLUMNAR)
        assert stable == v1 and canary == v1  # versions 1 and 3 hold the same weights
        assert second != v1
        status, _ = _rest(server, "/v1/models/first/versions/2:predict", SEEDED_COLUMNAR)
        assert status == 404  # on disk, but not in the specific policy
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = _seeded_grpc(model="first")
            request.model_spec.version_label = "canary"
            assert stub.Predict(request, timeout=TIMEOUT).model_spec.version.value == 3

            # HandleReloadConfigRequest: only "second", every version.
            reload = model_management_pb2.ReloadConfigRequest()
            entry = reload.config.model_config_list.config.add(
                name="second", base_path=str(tmp_path / "two"))
            entry.model_version_policy.all.SetInParent()
            answer = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                reload, timeout=TIMEOUT)
            assert answer.status.error_code == 0
            assert server.models.names() == ["second"]
            with pytest.raises(grpc.RpcError) as error:
                stub.Predict(_seeded_grpc(model="first"), timeout=TIMEOUT)
            assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_broken_version_is_logged_once_and_retried_when_its_files_change(tmp_path, caplog):
    (tmp_path / "1").mkdir()
    calls, now = [], [0.0]

    def loader(base_path, version, max_batch):
        calls.append(version)
        raise OSError("Read less bytes than requested")

    spec = model_config.ModelSpec(name="xmcgan", base_path=str(tmp_path))
    versions = models_lib.ModelVersions(spec, max_batch=4, loader=loader, clock=lambda: now[0])
    for _ in range(50):  # fifty polls of an unchanged broken version
        now[0] += 10.0
        versions.sync()
    logged = [r.getMessage() for r in caplog.records if "cannot be loaded" in r.getMessage()]
    assert calls == [1] and len(logged) == 1 and "Read less bytes" in logged[0]
    with pytest.raises(errors.ServingError) as error:
        versions.get(1)
    assert error.value.code == grpc.StatusCode.UNAVAILABLE and "Read less bytes" in error.value.message
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"now complete")
    now[0] += 10.0
    versions.sync()
    assert calls == [1, 1]  # changed files: tried again
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"changed again")
    versions.sync()
    assert calls == [1, 1]  # within the back-off: not yet


def test_start_refuses_a_directory_without_versions(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model versions"):
        server_lib.ModelServer(str(tmp_path), grpc_port=0, rest_port=0).start()


def test_a_second_server_on_a_port_in_use_fails_to_start(server, export_dir):
    with pytest.raises(OSError, match="cannot bind gRPC"):
        server_lib.ModelServer(export_dir, grpc_port=server.grpc_port, rest_port=None).start()
    with pytest.raises(OSError, match="cannot bind REST"):
        server_lib.ModelServer(export_dir, grpc_port=None, rest_port=server.rest_port).start()


def test_rest_connections_time_out_and_are_limited(export_dir):
    with server_lib.ModelServer(export_dir, grpc_port=None, rest_port=0, poll_seconds=0,
                                rest_timeout_seconds=0.5, max_connections=2) as server:
        stalled = socket.create_connection(("127.0.0.1", server.rest_port), timeout=TIMEOUT)
        stalled.sendall(b"POST /v1/models/xmcgan:predict HTTP/1.1\r\nContent-Length: 100\r\n"
                        b"\r\n{")  # a body that never completes
        idle = socket.create_connection(("127.0.0.1", server.rest_port), timeout=TIMEOUT)
        time.sleep(0.2)
        third = socket.create_connection(("127.0.0.1", server.rest_port), timeout=TIMEOUT)
        assert third.recv(100).startswith(b"HTTP/1.1 503")  # two connections already held
        third.close()
        start, answer = time.monotonic(), b""
        while chunk := stalled.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408")  # the body did not come in time
        assert idle.recv(4096) == b""  # the idle connection was closed too
        assert time.monotonic() - start < 10
        idle.close()
        stalled.close()
        _wait_for(lambda: _rest(server, "/v1/models/xmcgan")[0] == 200,
                  "the server did not free the timed-out connections")


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
