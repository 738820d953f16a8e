"""TF Serving's gRPC services over the served models: `PredictionService` (Predict,
GetModelMetadata) and `ModelService` (GetModelStatus, HandleReloadConfigRequest), with the
`tensorflow_serving.apis` stubs."""

from __future__ import annotations

from typing import Callable, Sequence

import grpc
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import status_pb2

from xmcgan_tf.serving import errors
from xmcgan_tf.serving import model_config
from xmcgan_tf.serving import models as models_lib
from xmcgan_tf.serving import servable as servable_lib


def _version_and_label(model_spec) -> tuple[int | None, str | None]:
    version = model_spec.version.value if model_spec.HasField("version") else None
    return version, model_spec.version_label or None


def _serve(context: grpc.ServicerContext, what: str, fn: Callable):
    """Runs a handler; a ServingError aborts with its code, anything else with INTERNAL."""
    try:
        return fn()
    except errors.ServingError as e:
        context.abort(e.code, e.message)
    except Exception as e:  # a bad request must not take the server down
        logging.exception("gRPC %s failed", what)
        context.abort(grpc.StatusCode.INTERNAL, f"internal error: {e}")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`PredictionService.Predict` and `GetModelMetadata`."""

    def __init__(self, models: models_lib.Models):
        self._models = models

    def Predict(self, request: predict_pb2.PredictRequest,  # noqa: N802 (gRPC method name)
                context: grpc.ServicerContext) -> predict_pb2.PredictResponse:
        def predict() -> predict_pb2.PredictResponse:
            servable = self._models.get(request.model_spec.name,
                                        *_version_and_label(request.model_spec))
            signature = servable.signature(request.model_spec.signature_name)
            servable.check_names(signature, list(request.inputs))
            inputs = {name: servable_lib.array_from_proto(name, proto, signature.inputs[name],
                                                          servable.max_batch)
                      for name, proto in request.inputs.items()}
            signature, outputs = servable.predict(signature.name, inputs,
                                                  list(request.output_filter))
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature.name
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response

        return _serve(context, "Predict", predict)

    def GetModelMetadata(  # noqa: N802 (gRPC method name)
            self, request: get_model_metadata_pb2.GetModelMetadataRequest,
            context: grpc.ServicerContext) -> get_model_metadata_pb2.GetModelMetadataResponse:
        def metadata() -> get_model_metadata_pb2.GetModelMetadataResponse:
            if list(request.metadata_field) != ["signature_def"]:
                raise errors.invalid("metadata_field must be ['signature_def'], the only one "
                                     "supported")
            servable = self._models.get(request.model_spec.name,
                                        *_version_and_label(request.model_spec))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(servable.signature_def_map())
            return response

        return _serve(context, "GetModelMetadata", metadata)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """`ModelService.GetModelStatus` and `HandleReloadConfigRequest`.

    Args:
      models: the served models.
      on_reload: called with the new specs after a successful reload (e.g. to remember them).
    """

    def __init__(self, models: models_lib.Models,
                 on_reload: Callable[[Sequence[model_config.ModelSpec]], None] | None = None):
        self._models = models
        self._on_reload = on_reload

    def GetModelStatus(  # noqa: N802 (gRPC method name)
            self, request: get_model_status_pb2.GetModelStatusRequest,
            context: grpc.ServicerContext) -> get_model_status_pb2.GetModelStatusResponse:
        def status() -> get_model_status_pb2.GetModelStatusResponse:
            entries = self._models.model(request.model_spec.name).status(
                *_version_and_label(request.model_spec))
            response = get_model_status_pb2.GetModelStatusResponse()
            for version, state in entries:
                entry = response.model_version_status.add()
                entry.version = version
                entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            return response

        return _serve(context, "GetModelStatus", status)

    def HandleReloadConfigRequest(  # noqa: N802 (gRPC method name)
            self, request: model_management_pb2.ReloadConfigRequest,
            context: grpc.ServicerContext) -> model_management_pb2.ReloadConfigResponse:
        def reload() -> model_management_pb2.ReloadConfigResponse:
            try:
                specs = model_config.specs_of(request.config)
            except model_config.ConfigError as e:
                raise errors.invalid(str(e)) from e
            self._models.reload(specs)
            if self._on_reload is not None:
                self._on_reload(specs)
            logging.info("reloaded the model config: %s", self._models.sync())
            response = model_management_pb2.ReloadConfigResponse()
            response.status.CopyFrom(status_pb2.StatusProto(error_code=0))
            return response

        return _serve(context, "HandleReloadConfigRequest", reload)
