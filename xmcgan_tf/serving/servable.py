"""One loaded version of an exported model: its signatures, input checks and warm-up.

Legend: B rows of a request.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import prediction_log_pb2

from xmcgan_tf.export import serving_module
from xmcgan_tf.serving import errors

DEFAULT_SIGNATURE = serving_module.SERVING_DEFAULT
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")


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
            raise errors.ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Serving signature name: {name!r} not found in signature def; available: "
                f"{sorted(self.signatures)}")
        return self.signatures[name]

    @staticmethod
    def check_names(signature: Signature, names: Sequence[str]) -> None:
        """Raises INVALID_ARGUMENT unless `names` are exactly the signature's inputs."""
        expected, given = set(signature.inputs), set(names)
        if expected != given:
            raise errors.invalid(
                f"input names do not match signature {signature.name!r}: expected "
                f"{sorted(expected)}, got {sorted(given)}"
                + (f" (missing {sorted(expected - given)})" if expected - given else "")
                + (f" (unknown {sorted(given - expected)})" if given - expected else ""))

    def check_inputs(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> int:
        """Checks names, dtypes, shapes and batch size; returns the batch size."""
        self.check_names(signature, list(inputs))
        batch = None
        for name, spec in signature.inputs.items():
            array = inputs[name]
            dtype = _array_dtype(array)
            if dtype != spec.dtype:
                raise errors.invalid(f"input {name!r} expects {spec.dtype.name} but {dtype.name} is "
                               "provided")
            if not spec.shape.is_compatible_with(array.shape):
                raise errors.invalid(f"input {name!r} has shape {list(array.shape)}; signature "
                               f"{signature.name!r} expects {_spec_str(spec)}")
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise errors.invalid(f"inputs have different batch sizes ({batch} and "
                               f"{array.shape[0]} for {name!r})")
        if batch == 0:
            raise errors.invalid("the request holds no rows (batch size 0)")
        if batch > self.max_batch:
            raise errors.invalid(f"batch size {batch} exceeds the server's max_batch {self.max_batch}")
        return batch

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> tuple[Signature, dict[str, np.ndarray]]:
        """Runs a signature on checked inputs; returns (signature, {output name: array})."""
        signature = self.signature(signature_name)
        self.check_inputs(signature, inputs)
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise errors.invalid(f"output_filter names {unknown}, which signature {signature.name!r} "
                           f"does not have (outputs: {sorted(signature.outputs)})")
        try:
            outputs = signature.function(**{k: tf.constant(v, dtype=signature.inputs[k].dtype)
                                            for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise errors.invalid(e.message.strip().splitlines()[0]) from e
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
    raise errors.ServingError(grpc.StatusCode.FAILED_PRECONDITION, f"{path} has no 'serve' meta graph")


def array_from_proto(name: str, proto: tensor_pb2.TensorProto, spec: tf.TensorSpec,
                     max_batch: int) -> np.ndarray:
    """A request's TensorProto as an array, checked against the signature input and the batch
    limit *before* anything is allocated.

    A TensorProto declares its shape apart from the values it carries, and `tf.make_ndarray`
    fills the declared shape (broadcasting a single value): a 40-byte request could otherwise
    make the server allocate gigabytes. Checked: rank, dtype, the batch dimension against
    `max_batch`, fixed dimensions, and that the values sent fill the declared shape.

    Raises:
      ServingError: INVALID_ARGUMENT naming the input and the problem.
    """
    if proto.tensor_shape.unknown_rank:
        raise errors.invalid(f"input {name!r} has no shape")
    dims = [int(d.size) for d in proto.tensor_shape.dim]
    dtype = tf.as_dtype(proto.dtype) if proto.dtype else None
    if dtype != spec.dtype:
        given = dtype.name if dtype is not None else "an invalid dtype"
        raise errors.invalid(f"input {name!r} expects {spec.dtype.name} but {given} is provided")
    expected = spec.shape.as_list()
    if len(dims) != len(expected) or any(
            e is not None and d != e for d, e in zip(dims, expected)) or min(dims, default=0) < 0:
        raise errors.invalid(f"input {name!r} has shape {dims}; the signature expects "
                             f"{_spec_str(spec)}")
    if dims and dims[0] > max_batch:
        raise errors.invalid(f"batch size {dims[0]} exceeds the server's max_batch {max_batch}")
    elements = int(np.prod(dims, dtype=np.int64))
    if proto.tensor_content:
        sent = len(proto.tensor_content) // max(dtype.size, 1)
    else:
        sent = sum(len(value) for field, value in proto.ListFields()
                   if field.name.endswith("_val"))
    if sent != elements:
        raise errors.invalid(f"input {name!r} declares shape {dims} ({elements} values) but "
                             f"carries {sent}")
    try:
        return tf.make_ndarray(proto)
    except Exception as e:
        raise errors.invalid(f"input {name!r}: the TensorProto cannot be read: {e}") from e
