r"""Client for the exported model over TF Serving's gRPC or REST protocol, and PNG grids.

Works against `xmcgan_tf.serving.server` and unchanged against a real TF Serving
(`tensorflow_model_server --model_name=xmcgan --model_base_path=EXPORT_DIR`): gRPC uses
`PredictionService.Predict` from `tensorflow_serving.apis`, REST `POST /v1/models/<name>:predict`
in the columnar format.

    python -m xmcgan_tf.serving.client --server=localhost:8500 --protocol=grpc \
        --model_name=xmcgan --seeds=0,1 --output=grid.png "a red circle" "a blue square"

Captions without `--seeds` use the `serving_default` signature (seed 0 per row); with seeds each
caption is generated once per seed through `serve_captions_seeded`, and the grid has one row
per caption and one column per seed.

Legend: N images, S image size.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Sequence

import grpc
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from xmcgan_tf import cli
from xmcgan_tf import grids
from xmcgan_tf.export import serving_module

SERVING_DEFAULT = serving_module.SERVING_DEFAULT
SERVE_CAPTIONS_SEEDED = serving_module.SERVE_CAPTIONS_SEEDED
IMAGES = serving_module.IMAGES
PROTOCOLS = ("grpc", "rest")
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class ServingClientError(RuntimeError):
    """The server refused or failed a request; the message holds its error text."""


def _check_request(captions: Sequence[str], seeds: Sequence[int] | None) -> None:
    if not captions:
        raise ValueError("no captions given")
    if isinstance(captions, str):
        raise TypeError("captions must be a sequence of strings, not one string")
    if seeds is not None and len(seeds) != len(captions):
        raise ValueError(f"{len(seeds)} seeds for {len(captions)} captions; give one seed per "
                         "caption")


def predict_grpc(server: str, captions: Sequence[str], *, seeds: Sequence[int] | None = None,
                 model_name: str = "xmcgan", version: int | None = None,
                 timeout: float = 120.0) -> np.ndarray:
    """Images for captions through gRPC `PredictionService.Predict`.

    Args:
      server: "host:port" of the gRPC endpoint.
      captions: N caption strings.
      seeds: N int seeds, or None for seed 0 (the `serving_default` signature).
      model_name: model name on the server.
      version: a specific version, or None for the server's default (newest).
      timeout: seconds before the call is abandoned.

    Returns:
      [N, S, S, 3] uint8.
    """
    _check_request(captions, seeds)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = version
    request.model_spec.signature_name = SERVING_DEFAULT if seeds is None else SERVE_CAPTIONS_SEEDED
    request.inputs[serving_module.CAPTIONS].CopyFrom(
        tf.make_tensor_proto([c.encode("utf-8") for c in captions], dtype=tf.string))
    if seeds is not None:
        request.inputs[serving_module.SEED].CopyFrom(
            tf.make_tensor_proto(np.asarray(seeds, np.int64)))
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(server, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            raise ServingClientError(f"gRPC {e.code().name}: {e.details()}") from e
    return tf.make_ndarray(response.outputs[IMAGES])


def _rest_url(server: str, model_name: str, version: int | None) -> str:
    base = server if server.startswith(("http://", "https://")) else f"http://{server}"
    path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version is not None else "")
    return base.rstrip("/") + path + ":predict"


def predict_rest(server: str, captions: Sequence[str], *, seeds: Sequence[int] | None = None,
                 model_name: str = "xmcgan", version: int | None = None,
                 timeout: float = 120.0) -> np.ndarray:
    """Images for captions through REST `:predict` (columnar format). Args as `predict_grpc`.

    Returns:
      [N, S, S, 3] uint8.
    """
    _check_request(captions, seeds)
    inputs: dict = {serving_module.CAPTIONS: list(captions)}
    if seeds is not None:
        inputs[serving_module.SEED] = [int(s) for s in seeds]
    signature = SERVING_DEFAULT if seeds is None else SERVE_CAPTIONS_SEEDED
    body = json.dumps({"signature_name": signature, "inputs": inputs}).encode("utf-8")
    request = urllib.request.Request(_rest_url(server, model_name, version), data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        try:
            text = json.loads(text).get("error", text)
        except (json.JSONDecodeError, AttributeError):
            pass
        raise ServingClientError(f"REST {e.code}: {text}") from e
    except urllib.error.URLError as e:
        raise ServingClientError(f"REST server {server} unreachable: {e.reason}") from e
    outputs = payload["outputs"]
    if isinstance(outputs, dict):
        outputs = outputs[IMAGES]
    return np.asarray(outputs, dtype=np.uint8)


def predict(server: str, captions: Sequence[str], *, seeds: Sequence[int] | None = None,
            protocol: str = "grpc", model_name: str = "xmcgan", version: int | None = None,
            timeout: float = 120.0) -> np.ndarray:
    """`predict_grpc` or `predict_rest` by `protocol`; returns [N, S, S, 3] uint8."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    fn = predict_grpc if protocol == "grpc" else predict_rest
    return fn(server, captions, seeds=seeds, model_name=model_name, version=version,
              timeout=timeout)


def expand(captions: Sequence[str], seeds: Sequence[int]) -> tuple[list[str], list[int]]:
    """Every caption once per seed, caption-major: (N*K captions, N*K seeds)."""
    return [c for c in captions for _ in seeds], [int(s) for _ in captions for s in seeds]


def captioned_grid(images: np.ndarray, captions: Sequence[str],
                   seeds: Sequence[int] | None) -> np.ndarray:
    """One row per caption, one column per seed; caption and seed under each image.

    Args:
      images: [R, C, S, S, 3] uint8 (R captions, C seeds; C = 1 without seeds).
      captions: the R captions.
      seeds: the C seeds, or None (the server's default noise).

    Returns:
      [H, W, 3] uint8.
    """
    images = np.asarray(images)
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(f"images must be [rows, cols, H, W, 3], got shape {images.shape}")
    rows, columns = images.shape[:2]
    texts = [caption if seeds is None else f"{caption} (seed {seed})"
             for caption in captions for seed in (seeds or [None])]
    if len(texts) != rows * columns:
        raise ValueError(f"{len(captions)} captions x {len(seeds or [None])} seeds do not "
                         f"match images of shape {images.shape}")
    return grids.image_grid(images.reshape((rows * columns,) + images.shape[2:]), texts,
                            columns=columns)


def write_png(path: str, image: np.ndarray) -> None:
    """Writes [H, W, 3] uint8 as a PNG (creating the parent directory)."""
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    tf.io.write_file(path, tf.io.encode_png(np.asarray(image, np.uint8)))


def parse_seeds(text: str) -> list[int] | None:
    """"0,1,2" -> [0, 1, 2]; "" -> None."""
    if not text.strip():
        return None
    try:
        return [int(s) for s in text.split(",")]
    except ValueError as e:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from e


FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Command-line flags; defined only when the module runs as a program."""
    flags.DEFINE_string("server", "localhost:8500", "host:port of the gRPC or REST endpoint.")
    flags.DEFINE_enum("protocol", "grpc", list(PROTOCOLS), "TF Serving protocol to speak.")
    flags.DEFINE_string("model_name", "xmcgan", "Model name on the server.")
    flags.DEFINE_integer("version", None, "Model version (default: the server's newest).")
    flags.DEFINE_string("seeds", "",
                        "Comma-separated seeds; each caption is generated once per seed.")
    flags.DEFINE_string("output", "grid.png", "PNG grid to write (rows: captions, columns: seeds).")
    flags.DEFINE_float("timeout", 120.0, "Request timeout in seconds.")


def main(argv: Sequence[str]) -> None:
    captions = list(argv[1:])
    if not captions:
        raise app.UsageError('give one or more captions, e.g. "a small red circle"')
    with cli.exit_on(ServingClientError, *cli.USER_ERRORS):
        seeds = parse_seeds(FLAGS.seeds)
        if seeds is None:
            images = predict(FLAGS.server, captions, protocol=FLAGS.protocol,
                             model_name=FLAGS.model_name, version=FLAGS.version,
                             timeout=FLAGS.timeout)[:, None]
        else:
            flat_captions, flat_seeds = expand(captions, seeds)
            images = predict(FLAGS.server, flat_captions, seeds=flat_seeds,
                             protocol=FLAGS.protocol, model_name=FLAGS.model_name,
                             version=FLAGS.version, timeout=FLAGS.timeout)
            images = images.reshape((len(captions), len(seeds)) + images.shape[1:])
        write_png(FLAGS.output, captioned_grid(images, captions, seeds))
    print(f"wrote {FLAGS.output}: {len(captions)} caption(s) x {images.shape[1]} image(s) of "
          f"{images.shape[2]} px")


def entry_point() -> None:
    """The `xmcgan-client` console script (and `python -m xmcgan_tf.serving.client`)."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    entry_point()
