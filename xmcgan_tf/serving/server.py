r"""A model server for local use that speaks TF Serving's gRPC and REST protocols, takes
`tensorflow_model_server`'s flags, and serves a page at `/` to type captions into.

No `tensorflow_model_server` binary exists for this platform (STACK_NOTES §7), so this serves
exports in TF Serving's layout (`BASE_PATH/<version>/`, written by `xmcgan-export`) from
Python, with the same flags, routes, version policies and error codes:

    xmcgan-serve --model_name=xmcgan --model_base_path=EXPORT_DIR --port=8500 \
        --rest_api_port=8501
    xmcgan-serve --model_config_file=models.config --port=8500 --rest_api_port=8501

- gRPC (`grpc_services`): `PredictionService/Predict`, `GetModelMetadata`;
  `ModelService/GetModelStatus`, `HandleReloadConfigRequest`.
- REST (`rest`): `/v1/models/<name>[/versions/<N> | /labels/<L>][:predict | /metadata]`, and
  the page at `/`.
- Versions (`models`, `model_config`): the model config's version policy (default: the newest
  version) picks what is loaded; every `--file_system_poll_wait_seconds` new versions are
  loaded and versions outside the policy or deleted from disk are unloaded.

Limits: `--max_batch` rows per request (declared shapes are checked before anything is
allocated), `--max_request_bytes` per REST body or gRPC message, `--rest_api_timeout_in_ms`
of silence before a REST connection is closed, `--max_connections` REST connections at once.
It binds 127.0.0.1 unless `--host` says otherwise, and refuses to start on a port in use.
"""

from __future__ import annotations

import concurrent.futures
import signal
import threading
from typing import Any, Sequence

import grpc
from absl import app
from absl import flags
from absl import logging
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from xmcgan_tf import cli
from xmcgan_tf.serving import grpc_services
from xmcgan_tf.serving import model_config
from xmcgan_tf.serving import models as models_lib
from xmcgan_tf.serving import rest

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class ModelServer:
    """gRPC + REST server over exported models.

    Args:
      model_base_path: export directory of the single model (`<version>/` subdirectories);
        None when `specs` are given.
      model_name: the single model's name.
      specs: the served models (from a model config file) instead of the single model.
      config_file: the model config file `specs` came from, re-read every poll.
      host: interface to bind; 127.0.0.1 keeps it local.
      grpc_port: gRPC port; 0 picks a free one; None disables gRPC.
      rest_port: REST port; 0 picks a free one; None disables REST.
      max_batch: the largest batch a request may hold.
      poll_seconds: how often to look for new and removed versions; 0 disables the poll.
      max_request_bytes: the largest REST body / gRPC message accepted.
      rest_timeout_seconds: silence after which a REST connection is closed.
      max_connections: REST connections served at once.
      grpc_workers: gRPC handler threads.

    After `start()`, `grpc_port` and `rest_port` hold the bound ports.
    """

    def __init__(self, model_base_path: str | None = None, *, model_name: str = "xmcgan",
                 specs: Sequence[model_config.ModelSpec] | None = None,
                 config_file: str | None = None, host: str = "127.0.0.1",
                 grpc_port: int | None = 8500, rest_port: int | None = 8501, max_batch: int = 64,
                 poll_seconds: float = 1.0, max_request_bytes: int = 64 * 1024 * 1024,
                 rest_timeout_seconds: float = 30.0, max_connections: int = 64,
                 grpc_workers: int = 4):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if (model_base_path is None) == (specs is None):
            raise ValueError("give either model_base_path or the specs of a model config")
        self.specs = list(specs) if specs is not None else [
            model_config.ModelSpec(name=model_name, base_path=model_base_path)]
        self.config_file = config_file
        self.max_batch = max_batch
        self.models: models_lib.Models | None = None
        self.host = host
        self.grpc_port = grpc_port
        self.rest_port = rest_port
        self.poll_seconds = poll_seconds
        self.max_request_bytes = max_request_bytes
        self.rest_timeout_seconds = rest_timeout_seconds
        self.max_connections = max_connections
        self.grpc_workers = grpc_workers
        self._grpc_server = None
        self._http_server = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> "ModelServer":
        """Loads every model's versions and starts listening.

        Raises:
          FileNotFoundError: a model has no loadable version.
          OSError: a port is in use or cannot be bound.
        """
        self.models = models_lib.Models(self.specs, self.max_batch)
        for name, versions in self.models.sync().items():
            if not versions:
                base_path = self.models.model(name).spec.base_path
                raise FileNotFoundError(f"no model versions (integer subdirectories) that load "
                                        f"in {base_path!r} for model {name!r}")
        try:
            self._start_grpc()
            self._start_rest()
        except Exception:
            self.stop()
            raise
        if self.poll_seconds > 0:
            self._start_thread(self._poll, "poll")
        logging.info("serving %s: gRPC %s:%s, REST %s:%s", self.models.sync(), self.host,
                     self.grpc_port, self.host, self.rest_port)
        return self

    def _start_grpc(self) -> None:
        if self.grpc_port is None:
            return
        options = [("grpc.max_receive_message_length", self.max_request_bytes),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.so_reuseport", 0)]  # a second server on the port must fail
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=self.grpc_workers)
        self._grpc_server = grpc.server(executor, options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            grpc_services.PredictionServicer(self.models), self._grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            grpc_services.ModelServicer(self.models, on_reload=self._remember), self._grpc_server)
        address = f"{self.host}:{self.grpc_port}"
        try:
            port = self._grpc_server.add_insecure_port(address)
        except RuntimeError as e:
            raise OSError(f"cannot bind gRPC to {address}: {e}") from e
        if not port:
            raise OSError(f"cannot bind gRPC to {address} (is the port in use?)")
        self.grpc_port = port
        self._grpc_server.start()

    def _start_rest(self) -> None:
        if self.rest_port is None:
            return
        try:
            self._http_server = rest.RestServer(
                (self.host, self.rest_port), self.models,
                max_request_bytes=self.max_request_bytes,
                timeout_seconds=self.rest_timeout_seconds, max_connections=self.max_connections)
        except OSError as e:
            raise OSError(f"cannot bind REST to {self.host}:{self.rest_port}: {e.strerror or e}"
                          ) from e
        self.rest_port = self._http_server.server_address[1]
        self._start_thread(self._http_server.serve_forever, "rest")

    def _remember(self, specs: Sequence[model_config.ModelSpec]) -> None:
        self.specs = list(specs)

    def _start_thread(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=f"xmcgan-serving-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            try:
                if self.config_file is not None:
                    specs = model_config.read(self.config_file)
                    if specs != self.specs:
                        logging.info("the model config %s changed; reloading", self.config_file)
                        self.specs = specs
                        self.models.reload(specs)
                self.models.sync()
            except model_config.ConfigError as e:
                logging.warning("%s; still serving %s", e, self.models.names())
            except Exception:  # the poll must go on whatever one round meets
                logging.exception("polling the model directories failed")

    def stop(self, grace: float = 1.0) -> None:
        """Stops listening and joins the server threads."""
        self._stopping.set()
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait()
            self._grpc_server = None
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
    """Command-line flags (tensorflow_model_server's names where it has the flag)."""
    flags.DEFINE_integer("port", 8500, "gRPC port (0: pick a free one; negative: no gRPC).")
    flags.DEFINE_integer("rest_api_port", 8501, "REST port (0: pick a free one; negative: no "
                         "REST).")
    flags.DEFINE_string("model_name", "xmcgan", "Name of the single model (with "
                        "--model_base_path).")
    flags.DEFINE_string("model_base_path", None, "Export directory of the single model, "
                        "holding <version>/ SavedModels (xmcgan-export's --export_dir).")
    flags.DEFINE_string("model_config_file", None, "TF Serving ModelServerConfig in text "
                        "format: several models, version policies and labels (instead of "
                        "--model_name/--model_base_path); re-read every poll.")
    flags.DEFINE_float("file_system_poll_wait_seconds", 1.0,
                       "How often to look for new, removed or changed versions and config "
                       "(0: never).")
    flags.DEFINE_string("host", "127.0.0.1", "Interface to bind (0.0.0.0 exposes the server).")
    flags.DEFINE_integer("max_batch", 64, "Largest batch one request may hold.", lower_bound=1)
    flags.DEFINE_integer("max_request_bytes", 64 * 1024 * 1024,
                         "Largest REST body or gRPC message accepted.", lower_bound=1)
    flags.DEFINE_integer("rest_api_timeout_in_ms", 30000, "Silence after which a REST "
                         "connection is closed.", lower_bound=1)
    flags.DEFINE_integer("max_connections", 64, "REST connections served at once.",
                         lower_bound=1)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if (FLAGS.model_base_path is None) == (FLAGS.model_config_file is None):
        raise app.UsageError("give --model_base_path (one model) or --model_config_file")
    with cli.exit_on(model_config.ConfigError, FileNotFoundError, OSError):
        specs = (model_config.read(FLAGS.model_config_file) if FLAGS.model_config_file
                 else None)
        server = ModelServer(
            FLAGS.model_base_path, model_name=FLAGS.model_name, specs=specs,
            config_file=FLAGS.model_config_file, host=FLAGS.host,
            grpc_port=FLAGS.port if FLAGS.port >= 0 else None,
            rest_port=FLAGS.rest_api_port if FLAGS.rest_api_port >= 0 else None,
            max_batch=FLAGS.max_batch, poll_seconds=FLAGS.file_system_poll_wait_seconds,
            max_request_bytes=FLAGS.max_request_bytes,
            rest_timeout_seconds=FLAGS.rest_api_timeout_in_ms / 1000.0,
            max_connections=FLAGS.max_connections)
        server.start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.request_stop())
    served = ", ".join(f"{name} versions {versions}"
                       for name, versions in server.models.sync().items())
    print(f"Serving {served}: gRPC {FLAGS.host}:{server.grpc_port}, "
          f"REST {FLAGS.host}:{server.rest_port} (page: http://{FLAGS.host}:{server.rest_port}/)",
          flush=True)
    server.wait()
    server.stop()


def entry_point() -> None:
    """The `xmcgan-serve` console script (and `python -m xmcgan_tf.serving.server`)."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    entry_point()
