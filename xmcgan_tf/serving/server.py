r"""A small model server for local use that speaks TF Serving's gRPC and REST protocols.

No `tensorflow_model_server` binary exists for this platform (STACK_NOTES §7), so this serves an
exported directory `MODEL_DIR/<version>/` (TF Serving layout, written by `xmcgan_tf.export`)
from Python:

- gRPC: `tensorflow.serving.PredictionService/Predict` and `GetModelMetadata`, and
  `tensorflow.serving.ModelService/GetModelStatus` (the `tensorflow_serving.apis` stubs).
- REST: `POST /v1/models/<name>[/versions/<N>]:predict` with the row (`"instances"`) or
  columnar (`"inputs"`) format, answered with `"predictions"` / `"outputs"`;
  `GET /v1/models/<name>[/versions/<N>]` (status) and `.../metadata`.

The newest version is loaded at start and becomes the default; a directory poll picks up newer
versions (`--file_system_poll_wait_seconds`, as TF Serving); an older version is loaded the
first time a request names it. Bad requests (unknown model, version or signature, missing or
extra inputs, wrong dtype or shape, empty batch, batch > `--max_batch`, bad JSON) get TF
Serving-style errors: REST `{"error": "..."}` with HTTP 400/404, gRPC INVALID_ARGUMENT/NOT_FOUND;
the server keeps serving. It binds 127.0.0.1 unless `--host` says otherwise.

    python -m xmcgan_tf.serving.server --model_base_path=EXPORT_DIR --model_name=xmcgan \
        --port=8500 --rest_api_port=8501
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import http
import http.server
import json
import os
import re
import signal
import threading
from typing import Any, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from xmcgan_tf import cli
from xmcgan_tf.export import serving_module

DEFAULT_SIGNATURE = serving_module.SERVING_DEFAULT
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: http.HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: http.HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: http.HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: http.HTTPStatus.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED: http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    grpc.StatusCode.UNIMPLEMENTED: http.HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: http.HTTPStatus.SERVICE_UNAVAILABLE,
}


class ServingError(Exception):
    """A request the server refuses; `code` is the gRPC status, `http_status` its REST twin."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return int(_HTTP_STATUS.get(self.code, http.HTTPStatus.INTERNAL_SERVER_ERROR))


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclasses.dataclass
class Signature:
    """One signature of a loaded version: its function and its input/output specs."""

    name: str
    function: Any
    inputs: dict[str, tf.TensorSpec]
    outputs: dict[str, tf.TensorSpec]


def _array_dtype(array: np.ndarray) -> tf.DType:
    if array.dtype == object or array.dtype.kind in "SU":
        return tf.string
    return tf.as_dtype(array.dtype)


def _spec_str(spec: tf.TensorSpec) -> str:
    dims = ", ".join("?" if d is None else str(d) for d in spec.shape.as_list())
    return f"{spec.dtype.name} [{dims}]"


class Servable:
    """One loaded version of the model.

    Args:
      export: the loaded SavedModel version.
      max_batch: the largest batch a request may hold.
    """

    def __init__(self, export: serving_module.LoadedExport, max_batch: int):
        self.version = export.version
        self.path = export.path
        self.max_batch = max_batch
        self._model = export.model
        self.signatures: dict[str, Signature] = {}
        for name, fn in self._model.signatures.items():
            _, kwargs = fn.structured_input_signature
            outputs = {k: tf.TensorSpec(v.shape, v.dtype, k)
                       for k, v in fn.structured_outputs.items()}
            self.signatures[name] = Signature(name, fn, dict(kwargs), outputs)
        self.signature_defs = _read_signature_defs(self.path)

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        """The SignatureDefs of the 'serve' graph, as TF Serving's metadata returns them."""
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        return signature_map

    def signature(self, name: str) -> Signature:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise _invalid(f"Serving signature name: {name!r} not found in signature def; "
                           f"available: {sorted(self.signatures)}")
        return self.signatures[name]

    def check_inputs(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> int:
        """Checks names, dtypes, shapes and batch size; returns the batch size."""
        expected, given = set(signature.inputs), set(inputs)
        if expected != given:
            raise _invalid(
                f"input names do not match signature {signature.name!r}: expected "
                f"{sorted(expected)}, got {sorted(given)}"
                + (f" (missing {sorted(expected - given)})" if expected - given else "")
                + (f" (unknown {sorted(given - expected)})" if given - expected else ""))
        batch = None
        for name, spec in signature.inputs.items():
            array = inputs[name]
            dtype = _array_dtype(array)
            if dtype != spec.dtype:
                raise _invalid(f"input {name!r} expects {spec.dtype.name} but {dtype.name} is "
                               "provided")
            if not spec.shape.is_compatible_with(array.shape):
                raise _invalid(f"input {name!r} has shape {list(array.shape)}; signature "
                               f"{signature.name!r} expects {_spec_str(spec)}")
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise _invalid(f"inputs have different batch sizes ({batch} and "
                               f"{array.shape[0]} for {name!r})")
        if batch == 0:
            raise _invalid("the request holds no rows (batch size 0)")
        if batch > self.max_batch:
            raise _invalid(f"batch size {batch} exceeds the server's max_batch {self.max_batch}")
        return batch

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> tuple[Signature, dict[str, np.ndarray]]:
        """Runs a signature on checked inputs; returns (signature, {output name: array})."""
        signature = self.signature(signature_name)
        self.check_inputs(signature, inputs)
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise _invalid(f"output_filter names {unknown}, which signature {signature.name!r} "
                           f"does not have (outputs: {sorted(signature.outputs)})")
        try:
            outputs = signature.function(**{k: tf.constant(v, dtype=signature.inputs[k].dtype)
                                            for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise _invalid(e.message.strip().splitlines()[0]) from e
        names = list(output_filter) or list(signature.outputs)
        return signature, {k: outputs[k].numpy() for k in names}

    def warm_up(self) -> int:
        """Replays `assets.extra/tf_serving_warmup_requests`; returns how many ran."""
        path = os.path.join(self.path, WARMUP_PATH)
        if not os.path.exists(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                continue
            request = log.predict_log.request
            self.predict(request.model_spec.signature_name,
                         {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
            count += 1
        return count


def _read_signature_defs(path: str) -> Mapping[str, meta_graph_pb2.SignatureDef]:
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph.signature_def
    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f"{path} has no 'serve' meta graph")


class ModelManager:
    """The versions of one model under `model_dir` that the server has loaded.

    Args:
      model_dir: the export base directory holding `<version>/` subdirectories.
      model_name: the name requests use.
      max_batch: the largest batch a request may hold.
    """

    def __init__(self, model_dir: str, model_name: str, max_batch: int):
        self.model_dir = model_dir
        self.model_name = model_name
        self.max_batch = max_batch
        self._servables: dict[int, Servable] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def _load(self, version: int) -> Servable:
        with self._load_lock:
            with self._lock:
                if version in self._servables:
                    return self._servables[version]
            logging.info("Loading %s version %d from %s", self.model_name, version, self.model_dir)
            servable = Servable(serving_module.load(self.model_dir, version), self.max_batch)
            warmed = servable.warm_up()
            logging.info("Loaded %s version %d (%d warm-up requests)", self.model_name, version,
                         warmed)
            with self._lock:
                self._servables[version] = servable
            return servable

    def refresh(self) -> int | None:
        """Loads the newest version on disk if it is not loaded yet; returns the newest version."""
        versions = serving_module.list_versions(self.model_dir)
        if not versions:
            return None
        self._load(versions[-1])
        return versions[-1]

    def loaded_versions(self) -> list[int]:
        with self._lock:
            return sorted(self._servables)

    def get(self, name: str, version: int | None = None) -> Servable:
        """The servable for (name, version); the newest loaded one when version is None."""
        if name != self.model_name:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: model {name!r} is not served "
                               f"(this server serves {self.model_name!r})")
        with self._lock:
            if version is None:
                if not self._servables:
                    raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                       f"no version of {name!r} is loaded")
                return self._servables[max(self._servables)]
            if version in self._servables:
                return self._servables[version]
        if version not in serving_module.list_versions(self.model_dir):
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Specific({name}, {version})")
        return self._load(version)

    def status(self, name: str, version: int | None = None) -> list[tuple[int, str]]:
        """[(version, state)] of the loaded versions (or of the one asked for)."""
        if version is not None:
            self.get(name, version)
            return [(version, "AVAILABLE")]
        self.get(name)
        return [(v, "AVAILABLE") for v in sorted(self.loaded_versions(), reverse=True)]


# ---------------------------------------------------------------- REST (JSON) conversion


def _nested_shape(value: Any, name: str) -> tuple[list[int], list[Any]]:
    """Shape and flat elements of a rectangular nested JSON list."""
    if not isinstance(value, list):
        return [], [value]
    if not value:
        return [0], []
    shapes, flat = None, []
    for item in value:
        shape, items = _nested_shape(item, name)
        if shapes is None:
            shapes = shape
        elif shape != shapes:
            raise _invalid(f"input {name!r} is a ragged list; all rows need the same shape")
        flat.extend(items)
    return [len(value)] + shapes, flat


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _json_element(value: Any, dtype: tf.DType, name: str) -> Any:
    if dtype == tf.string:
        if _is_b64(value):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (TypeError, ValueError) as e:
                raise _invalid(f"input {name!r} holds an invalid b64 string") from e
        if isinstance(value, str):
            return value.encode("utf-8")
        raise _invalid(f"input {name!r} expects strings but got {type(value).__name__} {value!r}")
    if isinstance(value, bool) and dtype != tf.bool:
        raise _invalid(f"input {name!r} expects {dtype.name} but got a boolean")
    if dtype.is_integer:
        if not isinstance(value, int):
            raise _invalid(f"input {name!r} expects {dtype.name} integers but got "
                           f"{type(value).__name__} {value!r}")
        if not dtype.min <= value <= dtype.max:
            raise _invalid(f"input {name!r}: {value} is out of the {dtype.name} range")
        return value
    if dtype.is_floating:
        if not isinstance(value, (int, float)):
            raise _invalid(f"input {name!r} expects {dtype.name} numbers but got "
                           f"{type(value).__name__} {value!r}")
        return value
    if dtype == tf.bool and isinstance(value, bool):
        return value
    raise _invalid(f"input {name!r} of dtype {dtype.name} cannot be given as {value!r}")


def json_to_array(value: Any, spec: tf.TensorSpec, name: str) -> np.ndarray:
    """A JSON value (nested lists) -> numpy array of the signature input's dtype."""
    try:
        shape, flat = _nested_shape(value, name)
    except RecursionError as e:
        raise _invalid(f"input {name!r} is nested too deeply") from e
    elements = [_json_element(v, spec.dtype, name) for v in flat]
    if spec.dtype == tf.string:
        array = np.empty(len(elements), dtype=object)
        array[:] = elements
    else:
        array = np.asarray(elements, dtype=spec.dtype.as_numpy_dtype)
    return array.reshape(shape)


def _json_value(array: np.ndarray) -> Any:
    if array.dtype == object:
        def convert(item):
            if isinstance(item, bytes):
                try:
                    return item.decode("utf-8")
                except UnicodeDecodeError:
                    return {"b64": base64.b64encode(item).decode("ascii")}
            return item
        if not array.size:
            return array.tolist()
        return np.vectorize(convert, otypes=[object])(array).tolist()
    return array.tolist()


def parse_rest_request(body: bytes, servable: Servable) -> tuple[str, dict[str, np.ndarray], bool]:
    """A `:predict` JSON body -> (signature name, inputs, row format?)."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _invalid(f"JSON Parse error: {e}") from e
    if not isinstance(request, dict):
        raise _invalid("the request body must be a JSON object")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise _invalid("'signature_name' must be a string")
    signature = servable.signature(signature_name)
    if ("instances" in request) == ("inputs" in request):
        raise _invalid("the request must hold exactly one of 'instances' (row format) or 'inputs' "
                       "(columnar format)")
    names = list(signature.inputs)
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise _invalid("'instances' must be a list")
        columns: dict[str, list] = {n: [] for n in names}
        for i, instance in enumerate(instances):
            if isinstance(instance, dict) and not _is_b64(instance):
                if set(instance) != set(names):
                    raise _invalid(f"instance {i} has keys {sorted(instance)}; signature "
                                   f"{signature.name!r} takes {sorted(names)}")
                for n in names:
                    columns[n].append(instance[n])
            elif len(names) == 1:
                columns[names[0]].append(instance)
            else:
                raise _invalid(f"signature {signature.name!r} takes several inputs "
                               f"{sorted(names)}; each instance must be an object naming them")
        inputs = {n: json_to_array(columns[n], signature.inputs[n], n) for n in names}
        return signature.name, inputs, True
    columns = request["inputs"]
    if not isinstance(columns, dict) or _is_b64(columns):
        if len(names) != 1:
            raise _invalid(f"'inputs' must be an object naming the inputs {sorted(names)}")
        columns = {names[0]: columns}
    unknown = sorted(set(columns) - set(names))
    missing = sorted(set(names) - set(columns))
    if unknown or missing:
        raise _invalid(f"'inputs' do not match signature {signature.name!r}: missing {missing}, "
                       f"unknown {unknown}")
    inputs = {n: json_to_array(columns[n], signature.inputs[n], n) for n in names}
    return signature.name, inputs, False


def format_rest_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict:
    """Outputs -> `{"predictions": ...}` (row) or `{"outputs": ...}` (columnar), as TF Serving."""
    if row_format:
        names = list(outputs)
        batch = next(iter(outputs.values())).shape[0]
        if len(names) == 1:
            return {"predictions": _json_value(outputs[names[0]])}
        return {"predictions": [{n: _json_value(outputs[n][i]) for n in names}
                                for i in range(batch)]}
    if len(outputs) == 1:
        return {"outputs": _json_value(next(iter(outputs.values())))}
    return {"outputs": {n: _json_value(v) for n, v in outputs.items()}}


_REST_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<verb>[A-Za-z]+)|/(?P<resource>metadata))?/?$")


def _status_json(entries: list[tuple[int, str]]) -> dict:
    return {"model_version_status": [
        {"version": str(v), "state": state, "status": {"error_code": "OK", "error_message": ""}}
        for v, state in entries]}


def _metadata_json(servable: Servable, name: str) -> dict:
    return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": json_format.MessageToDict(
                servable.signature_def_map(), preserving_proto_field_name=True)}}


def _make_rest_handler(manager: ModelManager, max_request_bytes: int) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "xmcgan-serving"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
            logging.debug("REST %s " + format, self.address_string(), *args)

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> tuple[str, int | None, str | None, str | None]:
            match = _REST_PATH.match(self.path.split("?", 1)[0])
            if not match:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Malformed request: {self.command} {self.path}")
            if match["label"] is not None:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"version label {match['label']!r} is not configured on this server")
            version = None
            if match["version"] is not None:
                if not match["version"].isdigit():
                    raise _invalid(f"version {match['version']!r} is not an integer")
                version = int(match["version"])
            return match["name"], version, match["verb"], match["resource"]

        def _handle(self, method: str) -> None:
            try:
                # The body is read first so that an error answer leaves the connection usable.
                body = self._read_body() if method == "POST" else b""
                name, version, verb, resource = self._route()
                if method == "GET" and verb is None and resource is None:
                    self._send(200, _status_json(manager.status(name, version)))
                elif method == "GET" and resource == "metadata":
                    self._send(200, _metadata_json(manager.get(name, version), name))
                elif method == "POST" and verb == "predict":
                    servable = manager.get(name, version)
                    signature, inputs, row_format = parse_rest_request(body, servable)
                    _, outputs = servable.predict(signature, inputs)
                    self._send(200, format_rest_response(outputs, row_format))
                elif method == "POST" and verb in ("classify", "regress"):
                    raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                       f":{verb} is not supported; this model has only :predict")
                else:
                    raise ServingError(grpc.StatusCode.NOT_FOUND,
                                       f"Malformed request: {method} {self.path}")
            except ServingError as e:
                self._send(e.http_status, {"error": e.message})
            except Exception as e:  # a bad request must not take the server down
                logging.exception("REST request failed")
                self._send(500, {"error": f"internal error: {e}"})

        def _read_body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                raise _invalid("the request needs a Content-Length header")
            if int(length) > max_request_bytes:
                self.close_connection = True
                raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                   f"request body of {length} bytes exceeds {max_request_bytes}")
            return self.rfile.read(int(length))

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

    return Handler


# ---------------------------------------------------------------- gRPC services


def _request_version(model_spec) -> int | None:
    if model_spec.HasField("version"):
        return model_spec.version.value
    if model_spec.version_label:
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f"version label {model_spec.version_label!r} is not configured on this server")
    return None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`PredictionService.Predict` and `GetModelMetadata` over a ModelManager."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def Predict(self, request: predict_pb2.PredictRequest,  # noqa: N802 (gRPC method name)
                context: grpc.ServicerContext) -> predict_pb2.PredictResponse:
        try:
            servable = self._manager.get(request.model_spec.name,
                                         _request_version(request.model_spec))
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            except Exception as e:
                raise _invalid(f"an input TensorProto cannot be read: {e}") from e
            signature, outputs = servable.predict(request.model_spec.signature_name, inputs,
                                                  list(request.output_filter))
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature.name
            for k, v in outputs.items():
                response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
            return response
        except ServingError as e:
            context.abort(e.code, e.message)
        except Exception as e:  # a bad request must not take the server down
            logging.exception("gRPC Predict failed")
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {e}")

    def GetModelMetadata(  # noqa: N802 (gRPC method name)
            self, request: get_model_metadata_pb2.GetModelMetadataRequest,
            context: grpc.ServicerContext) -> get_model_metadata_pb2.GetModelMetadataResponse:
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise _invalid("metadata_field must be ['signature_def'], the only one supported")
            servable = self._manager.get(request.model_spec.name,
                                         _request_version(request.model_spec))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(servable.signature_def_map())
            return response
        except ServingError as e:
            context.abort(e.code, e.message)


class ModelStatusServicer(model_service_pb2_grpc.ModelServiceServicer):
    """`ModelService.GetModelStatus` over a ModelManager."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    def GetModelStatus(  # noqa: N802 (gRPC method name)
            self, request: get_model_status_pb2.GetModelStatusRequest,
            context: grpc.ServicerContext) -> get_model_status_pb2.GetModelStatusResponse:
        try:
            entries = self._manager.status(request.model_spec.name,
                                           _request_version(request.model_spec))
        except ServingError as e:
            context.abort(e.code, e.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, state in entries:
            status = response.model_version_status.add()
            status.version = version
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
        return response


# ---------------------------------------------------------------- the server


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ModelServer:
    """gRPC + REST server over one exported model directory.

    Args:
      model_dir: export base directory (`<version>/` subdirectories).
      model_name: the name requests must use.
      host: interface to bind; 127.0.0.1 keeps it local.
      grpc_port: gRPC port; 0 picks a free one; None disables gRPC.
      rest_port: REST port; 0 picks a free one; None disables REST.
      max_batch: the largest batch a request may hold.
      poll_seconds: how often to look for a newer version; 0 disables the poll.
      max_request_bytes: the largest REST body / gRPC message accepted.
      grpc_workers: gRPC handler threads.

    After `start()`, `grpc_port` and `rest_port` hold the bound ports.
    """

    def __init__(self, model_dir: str, *, model_name: str = "xmcgan", host: str = "127.0.0.1",
                 grpc_port: int | None = 8500, rest_port: int | None = 8501, max_batch: int = 64,
                 poll_seconds: float = 1.0, max_request_bytes: int = 64 * 1024 * 1024,
                 grpc_workers: int = 4):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.manager = ModelManager(model_dir, model_name, max_batch)
        self.host = host
        self.grpc_port = grpc_port
        self.rest_port = rest_port
        self.poll_seconds = poll_seconds
        self.max_request_bytes = max_request_bytes
        self.grpc_workers = grpc_workers
        self._grpc_server = None
        self._http_server = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> "ModelServer":
        """Loads the newest version and starts listening; raises if there is no version."""
        if self.manager.refresh() is None:
            raise FileNotFoundError(f"no model versions (integer subdirectories) in "
                                    f"{self.manager.model_dir!r}")
        if self.grpc_port is not None:
            options = [("grpc.max_receive_message_length", self.max_request_bytes),
                       ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
            executor = concurrent.futures.ThreadPoolExecutor(max_workers=self.grpc_workers)
            self._grpc_server = grpc.server(executor, options=options)
            prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
                PredictionServicer(self.manager), self._grpc_server)
            model_service_pb2_grpc.add_ModelServiceServicer_to_server(
                ModelStatusServicer(self.manager), self._grpc_server)
            self.grpc_port = self._grpc_server.add_insecure_port(f"{self.host}:{self.grpc_port}")
            if not self.grpc_port:
                raise OSError(f"cannot bind gRPC to {self.host}")
            self._grpc_server.start()
        if self.rest_port is not None:
            handler = _make_rest_handler(self.manager, self.max_request_bytes)
            self._http_server = _HTTPServer((self.host, self.rest_port), handler)
            self.rest_port = self._http_server.server_address[1]
            self._start_thread(self._http_server.serve_forever, "rest")
        if self.poll_seconds > 0:
            self._start_thread(self._poll, "poll")
        logging.info("Serving %s from %s: gRPC %s:%s, REST %s:%s", self.manager.model_name,
                     self.manager.model_dir, self.host, self.grpc_port, self.host, self.rest_port)
        return self

    def _start_thread(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=f"xmcgan-serving-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            try:
                self.manager.refresh()
            except Exception:  # a half-written or broken version must not stop the server
                logging.exception("loading a new version failed; still serving %s",
                                  self.manager.loaded_versions())

    def stop(self, grace: float = 1.0) -> None:
        """Stops listening and joins the server threads."""
        self._stopping.set()
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def request_stop(self) -> None:
        """Makes `wait()` return; safe to call from a signal handler."""
        self._stopping.set()

    def wait(self) -> None:
        """Blocks until `stop()` (e.g. from a signal handler)."""
        self._stopping.wait()

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Command-line flags; defined only when the module runs as a program."""
    flags.DEFINE_string("model_base_path", None, "Export directory holding <version>/ "
                        "SavedModels (xmcgan-export's --export_dir).")
    flags.DEFINE_string("model_name", "xmcgan", "Model name used in requests.")
    flags.DEFINE_string("host", "127.0.0.1", "Interface to bind (0.0.0.0 exposes the server).")
    flags.DEFINE_integer("port", 8500, "gRPC port (0: pick a free one; negative: no gRPC).")
    flags.DEFINE_integer("rest_api_port", 8501, "REST port (0: pick a free one; negative: no "
                         "REST).")
    flags.DEFINE_integer("max_batch", 64, "Largest batch one request may hold.")
    flags.DEFINE_float("file_system_poll_wait_seconds", 1.0,
                       "How often to look for a newer version (0: never).")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    server = ModelServer(
        FLAGS.model_base_path, model_name=FLAGS.model_name, host=FLAGS.host,
        grpc_port=FLAGS.port if FLAGS.port >= 0 else None,
        rest_port=FLAGS.rest_api_port if FLAGS.rest_api_port >= 0 else None,
        max_batch=FLAGS.max_batch, poll_seconds=FLAGS.file_system_poll_wait_seconds)
    server.start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.request_stop())
    print(f"Serving {FLAGS.model_name} versions {server.manager.loaded_versions()} from "
          f"{FLAGS.model_base_path}: gRPC {FLAGS.host}:{server.grpc_port}, "
          f"REST {FLAGS.host}:{server.rest_port}", flush=True)
    server.wait()
    server.stop()


def entry_point() -> None:
    """The `xmcgan-serve` console script (and `python -m xmcgan_tf.serving.server`)."""
    cli.run(main, _define_flags, required=("model_base_path",))


if __name__ == "__main__":
    entry_point()
