"""The served models and their loaded versions, kept in step with the disk and the config.

`ModelVersions` serves one model: `sync()` (at start, then every poll) loads the versions its
policy selects among the integer directories of its base path and unloads the others —
versions beyond the policy, and versions whose directory was deleted. A version that fails to
load (half-written, broken) is logged once and tried again only when its files change, at
most once per back-off interval (doubling up to `MAX_RETRY_SECONDS`); requests for it get
UNAVAILABLE with the load error. `Models` holds every served model by name and replaces the
set on a config reload.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Callable, Sequence

import grpc
from absl import logging

from xmcgan_tf.export import serving_module
from xmcgan_tf.serving import errors
from xmcgan_tf.serving import model_config
from xmcgan_tf.serving import servable as servable_lib

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0

AVAILABLE = "AVAILABLE"


def directory_fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file under `path`: changes when its files do."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


@dataclasses.dataclass
class _Failure:
    message: str
    fingerprint: tuple
    retry_after: float
    delay: float


Loader = Callable[[str, int, int], servable_lib.Servable]


def load_servable(base_path: str, version: int, max_batch: int) -> servable_lib.Servable:
    """Loads `base_path/<version>` and replays its warm-up requests."""
    servable = servable_lib.Servable(serving_module.load(base_path, version), max_batch)
    warmed = servable.warm_up()
    logging.info("loaded %s version %d (%d warm-up requests)", base_path, version, warmed)
    return servable


class ModelVersions:
    """The loaded versions of one model (see the module docstring).

    Args:
      spec: the model's name, base path, version policy and labels.
      max_batch: the largest batch a request may hold.
      loader: (base_path, version, max_batch) -> Servable.
      clock: seconds, for the retry back-off.
    """

    def __init__(self, spec: model_config.ModelSpec, max_batch: int,
                 loader: Loader = load_servable, clock: Callable[[], float] = time.monotonic):
        self.spec = spec
        self.max_batch = max_batch
        self._loader = loader
        self._clock = clock
        self._servables: dict[int, servable_lib.Servable] = {}
        self._failures: dict[int, _Failure] = {}
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    def loaded_versions(self) -> list[int]:
        with self._lock:
            return sorted(self._servables)

    def sync(self) -> list[int]:
        """Loads the versions the policy selects, unloads the rest; returns the loaded ones."""
        with self._sync_lock:
            available = serving_module.list_versions(self.spec.base_path)
            wanted = self.spec.select(available)
            with self._lock:
                for version in sorted(set(self._servables) - set(wanted)):
                    logging.info("unloading %s version %d (%s)", self.name, version,
                                 "deleted" if version not in available
                                 else f"outside the {self.spec.policy} policy")
                    del self._servables[version]
                for version in set(self._failures) - set(wanted):
                    del self._failures[version]
                missing = [v for v in wanted if v not in self._servables]
            for version in missing:
                self._try_load(version)
            return self.loaded_versions()

    def _try_load(self, version: int) -> None:
        path = os.path.join(self.spec.base_path, str(version))
        fingerprint = directory_fingerprint(path)
        failure = self._failures.get(version)
        now = self._clock()
        if failure is not None and (fingerprint == failure.fingerprint
                                    or now < failure.retry_after):
            return
        try:
            servable = self._loader(self.spec.base_path, version, self.max_batch)
        except Exception as e:  # a half-written or broken version must not stop the server
            delay = FIRST_RETRY_SECONDS if failure is None else min(failure.delay * 2,
                                                                    MAX_RETRY_SECONDS)
            message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
            if failure is None or failure.message != message:
                logging.warning("%s version %d cannot be loaded (%s); it is tried again when "
                                "its files change", self.name, version, message)
            self._failures[version] = _Failure(message, fingerprint, now + delay, delay)
            return
        with self._lock:
            self._servables[version] = servable
        self._failures.pop(version, None)

    def resolve(self, version: int | None = None, label: str | None = None) -> int:
        """The version a request means: its number, its label's, or the newest loaded."""
        if label:
            if label not in self.spec.labels:
                raise errors.invalid(f"Unrecognized servable version label: {label!r} "
                                     f"(model {self.name!r} has labels "
                                     f"{sorted(self.spec.labels)})")
            return self.spec.labels[label]
        if version is not None:
            return version
        with self._lock:
            if not self._servables:
                raise errors.ServingError(grpc.StatusCode.UNAVAILABLE,
                                          f"no version of {self.name!r} is loaded"
                                          + self._failure_note())
            return max(self._servables)

    def _failure_note(self) -> str:
        return "".join(f"; version {v} failed to load: {f.message}"
                       for v, f in sorted(self._failures.items()))

    def get(self, version: int | None = None, label: str | None = None) -> servable_lib.Servable:
        """The servable a request names (see `resolve`)."""
        resolved = self.resolve(version, label)
        with self._lock:
            if resolved in self._servables:
                return self._servables[resolved]
            failure = self._failures.get(resolved)
        if failure is not None:
            raise errors.ServingError(grpc.StatusCode.UNAVAILABLE,
                                      f"{self.name} version {resolved} failed to load: "
                                      f"{failure.message}")
        raise errors.not_found(f"Servable not found for request: Specific({self.name}, "
                               f"{resolved}) (served versions: {self.loaded_versions()})")

    def status(self, version: int | None = None, label: str | None = None
               ) -> list[tuple[int, str]]:
        """[(version, state)], newest first: every loaded version, or the one named."""
        if version is not None or label:
            return [(self.get(version, label).version, AVAILABLE)]
        return [(v, AVAILABLE) for v in sorted(self.loaded_versions(), reverse=True)]


class Models:
    """Every served model by name.

    Args:
      specs: the served models.
      max_batch: the largest batch a request may hold.
      loader: as for ModelVersions.
    """

    def __init__(self, specs: Sequence[model_config.ModelSpec], max_batch: int,
                 loader: Loader = load_servable):
        self.max_batch = max_batch
        self._loader = loader
        self._models: dict[str, ModelVersions] = {}
        self._lock = threading.Lock()
        self.reload(specs)

    def reload(self, specs: Sequence[model_config.ModelSpec]) -> None:
        """Serves exactly `specs` from now on (a model whose spec is unchanged keeps its loaded
        versions) and syncs them."""
        with self._lock:
            current = dict(self._models)
        models = {}
        for spec in specs:
            kept = current.get(spec.name)
            models[spec.name] = (kept if kept is not None and kept.spec == spec
                                 else ModelVersions(spec, self.max_batch, self._loader))
        for name in sorted(set(current) - set(models)):
            logging.info("model %s is no longer served", name)
        with self._lock:
            self._models = models
        self.sync()

    def sync(self) -> dict[str, list[int]]:
        """Syncs every model with its base path; returns name -> loaded versions."""
        with self._lock:
            models = list(self._models.values())
        return {m.name: m.sync() for m in models}

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def model(self, name: str) -> ModelVersions:
        with self._lock:
            model = self._models.get(name)
            served = sorted(self._models)
        if model is None:
            raise errors.not_found(f"Servable not found for request: model {name!r} is not "
                                   f"served (this server serves {served})")
        return model

    def get(self, name: str, version: int | None = None,
            label: str | None = None) -> servable_lib.Servable:
        return self.model(name).get(version, label)
