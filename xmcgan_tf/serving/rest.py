"""TF Serving's REST API (`/v1/models/...`) and the page at `/` that calls it.

Routes (TF Serving's): `POST /v1/models/<name>[/versions/<N> | /labels/<L>]:predict` with the
row (`"instances"`) or columnar (`"inputs"`) format, answered with `"predictions"` /
`"outputs"`; `GET /v1/models/<name>[/versions/<N> | /labels/<L>]` (status) and `.../metadata`.
Errors are `{"error": "..."}` with the HTTP twin of TF Serving's gRPC code (`errors`).

Limits: a body larger than `max_request_bytes` is refused (413) before it is read; a
connection that sends nothing for `timeout_seconds` is closed; at most `max_connections` are
served at once (more get 503 and are closed).
"""

from __future__ import annotations

import base64
import http.server
import importlib.resources
import json
import re
import socket
import threading
from typing import Any, Mapping

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format

from xmcgan_tf.serving import errors
from xmcgan_tf.serving import models as models_lib
from xmcgan_tf.serving import servable as servable_lib

PAGE_FILE = "page.html"

# ---------------------------------------------------------------- JSON <-> arrays


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
            raise errors.invalid(f"input {name!r} is a ragged list; all rows need the same shape")
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
                raise errors.invalid(f"input {name!r} holds an invalid b64 string") from e
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError as e:  # a lone surrogate such as "\ud800"
                raise errors.invalid(f"input {name!r} holds a string that is not valid "
                                     f"Unicode: {value!r}") from e
        raise errors.invalid(f"input {name!r} expects strings but got {type(value).__name__} {value!r}")
    if isinstance(value, bool) and dtype != tf.bool:
        raise errors.invalid(f"input {name!r} expects {dtype.name} but got a boolean")
    if dtype.is_integer:
        if not isinstance(value, int):
            raise errors.invalid(f"input {name!r} expects {dtype.name} integers but got "
                           f"{type(value).__name__} {value!r}")
        if not dtype.min <= value <= dtype.max:
            raise errors.invalid(f"input {name!r}: {value} is out of the {dtype.name} range")
        return value
    if dtype.is_floating:
        if not isinstance(value, (int, float)):
            raise errors.invalid(f"input {name!r} expects {dtype.name} numbers but got "
                           f"{type(value).__name__} {value!r}")
        return value
    if dtype == tf.bool and isinstance(value, bool):
        return value
    raise errors.invalid(f"input {name!r} of dtype {dtype.name} cannot be given as {value!r}")


def json_to_array(value: Any, spec: tf.TensorSpec, name: str) -> np.ndarray:
    """A JSON value (nested lists) -> numpy array of the signature input's dtype."""
    try:
        shape, flat = _nested_shape(value, name)
    except RecursionError as e:
        raise errors.invalid(f"input {name!r} is nested too deeply") from e
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


def parse_request(body: bytes, servable: servable_lib.Servable
                  ) -> tuple[str, dict[str, np.ndarray], bool]:
    """A `:predict` JSON body -> (signature name, inputs, row format?)."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise errors.invalid(f"JSON Parse error: {e}") from e
    if not isinstance(request, dict):
        raise errors.invalid("the request body must be a JSON object")
    signature_name = request.get("signature_name", servable_lib.DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise errors.invalid("'signature_name' must be a string")
    signature = servable.signature(signature_name)
    if ("instances" in request) == ("inputs" in request):
        raise errors.invalid("the request must hold exactly one of 'instances' (row format) or 'inputs' "
                       "(columnar format)")
    names = list(signature.inputs)
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise errors.invalid("'instances' must be a list")
        columns: dict[str, list] = {n: [] for n in names}
        for i, instance in enumerate(instances):
            if isinstance(instance, dict) and not _is_b64(instance):
                if set(instance) != set(names):
                    raise errors.invalid(f"instance {i} has keys {sorted(instance)}; signature "
                                   f"{signature.name!r} takes {sorted(names)}")
                for n in names:
                    columns[n].append(instance[n])
            elif len(names) == 1:
                columns[names[0]].append(instance)
            else:
                raise errors.invalid(f"signature {signature.name!r} takes several inputs "
                               f"{sorted(names)}; each instance must be an object naming them")
        inputs = {n: json_to_array(columns[n], signature.inputs[n], n) for n in names}
        return signature.name, inputs, True
    columns = request["inputs"]
    if not isinstance(columns, dict) or _is_b64(columns):
        if len(names) != 1:
            raise errors.invalid(f"'inputs' must be an object naming the inputs {sorted(names)}")
        columns = {names[0]: columns}
    unknown = sorted(set(columns) - set(names))
    missing = sorted(set(names) - set(columns))
    if unknown or missing:
        raise errors.invalid(f"'inputs' do not match signature {signature.name!r}: missing {missing}, "
                       f"unknown {unknown}")
    inputs = {n: json_to_array(columns[n], signature.inputs[n], n) for n in names}
    return signature.name, inputs, False


def format_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict:
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


# ---------------------------------------------------------------- routes

_REST_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<verb>[A-Za-z]+)|/(?P<resource>metadata))?/?$")


def _status_json(entries: list[tuple[int, str]]) -> dict:
    return {"model_version_status": [
        {"version": str(v), "state": state, "status": {"error_code": "OK", "error_message": ""}}
        for v, state in entries]}


def _metadata_json(servable: servable_lib.Servable, name: str) -> dict:
    return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": json_format.MessageToDict(
                servable.signature_def_map(), preserving_proto_field_name=True)}}


def page_html(model_names: list[str], max_batch: int) -> bytes:
    """The page at `/` (xmcgan_tf/serving/page.html) for the served models: type captions,
    choose a seed and a count, see and download the images; it calls `:predict` with the
    `serve_captions_seeded` signature, at most `max_batch` rows per request."""
    text = importlib.resources.files("xmcgan_tf.serving").joinpath(PAGE_FILE).read_text(
        encoding="utf-8")
    text = re.sub(r"/\*MODELS\*/\[[^\]]*\]", lambda _: json.dumps(model_names).replace("<", "\\u003c"),
                  text)
    text = re.sub(r"/\*MAX_BATCH\*/[0-9]+", str(int(max_batch)), text)
    return text.encode("utf-8")


class RestServer(http.server.ThreadingHTTPServer):
    """The REST endpoint over `models`.

    Args:
      address: (host, port); port 0 picks a free one.
      models: the served models.
      max_request_bytes: the largest body accepted.
      timeout_seconds: how long a connection may stay silent (reading a request or idle).
      max_connections: connections served at once.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], models: models_lib.Models, *,
                 max_request_bytes: int, timeout_seconds: float, max_connections: int):
        self.models = models
        self.max_request_bytes = max_request_bytes
        self.timeout_seconds = timeout_seconds
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, RestHandler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class RestHandler(http.server.BaseHTTPRequestHandler):
    """One REST connection (keep-alive: several requests)."""

    protocol_version = "HTTP/1.1"
    server_version = "xmcgan-serving"
    server: RestServer

    def setup(self) -> None:
        self.timeout = self.server.timeout_seconds
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        logging.debug("REST %s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload, separators=(",", ":")).encode("utf-8"),
                   "application/json")

    def _route(self) -> tuple[str, int | None, str | None, str | None, str | None]:
        match = _REST_PATH.match(self.path.split("?", 1)[0])
        if not match:
            raise errors.not_found(f"Malformed request: {self.command} {self.path}")
        version = None
        if match["version"] is not None:
            if not re.fullmatch(r"[0-9]{1,18}", match["version"]):
                raise errors.invalid(f"version {match['version']!r} is not an integer")
            version = int(match["version"])
        return match["name"], version, match["label"], match["verb"], match["resource"]

    def _handle(self, method: str) -> None:
        models = self.server.models
        try:
            # The body is read first so that an error answer leaves the connection usable.
            body = self._read_body() if method == "POST" else b""
            if method == "GET" and self.path.split("?", 1)[0] in ("/", "/index.html"):
                self._send(200, page_html(models.names(), models.max_batch),
                           "text/html; charset=utf-8")
                return
            name, version, label, verb, resource = self._route()
            if method == "GET" and verb is None and resource is None:
                self._send_json(200, _status_json(models.model(name).status(version, label)))
            elif method == "GET" and resource == "metadata":
                self._send_json(200, _metadata_json(models.get(name, version, label), name))
            elif method == "POST" and verb == "predict":
                servable = models.get(name, version, label)
                signature, inputs, row_format = parse_request(body, servable)
                _, outputs = servable.predict(signature, inputs)
                self._send_json(200, format_response(outputs, row_format))
            elif method == "POST" and verb in ("classify", "regress"):
                raise errors.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                          f":{verb} is not supported; this model has only "
                                          ":predict")
            else:
                raise errors.not_found(f"Malformed request: {method} {self.path}")
        except errors.ServingError as e:
            self._send_json(e.http_status, {"error": e.message})
        except Exception as e:  # a bad request must not take the server down
            logging.exception("REST request failed")
            self._send_json(500, {"error": f"internal error: {e}"})

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not re.fullmatch(r"[0-9]{1,18}", length):
            self.close_connection = True
            raise errors.invalid("the request needs a Content-Length header")
        if int(length) > self.server.max_request_bytes:
            self.close_connection = True
            raise errors.ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      f"request body of {length} bytes exceeds "
                                      f"{self.server.max_request_bytes}")
        try:
            return self.rfile.read(int(length))
        except TimeoutError as e:
            self.close_connection = True
            raise errors.ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                      f"the request body did not arrive within "
                                      f"{self.server.timeout_seconds:g} s") from e

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")
