"""Which models a server serves, and which of their versions: TF Serving's configuration.

A server serves either one model (`--model_name`, `--model_base_path`) or the models of a
`--model_config_file`: TF Serving's text-format `ModelServerConfig`,

    model_config_list {
      config {
        name: "xmcgan"
        base_path: "/exports/xmcgan"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 2 } }   # or all {} / specific { versions: 3 }
        version_labels { key: "stable" value: 3 }
      }
    }

The version policy picks the versions to load among the integer directories of `base_path`,
as TF Serving does: `latest` (the default, N = 1) the N newest, `all` every one, `specific`
the listed ones that exist. A version label names one version; it must be among the served
versions when a request uses it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Sequence

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

LATEST, ALL, SPECIFIC = "latest", "all", "specific"


class ConfigError(ValueError):
    """A model config file that cannot be read, or one that makes no sense."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One served model.

    Attributes:
      name: the name requests use.
      base_path: the export directory holding `<version>/` SavedModels.
      policy: LATEST, ALL or SPECIFIC.
      num_versions: N of LATEST.
      versions: the versions of SPECIFIC.
      labels: version label -> version.
    """

    name: str
    base_path: str
    policy: str = LATEST
    num_versions: int = 1
    versions: tuple[int, ...] = ()
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def select(self, available: Sequence[int]) -> list[int]:
        """The versions to serve among those on disk, newest first."""
        available = sorted(set(available), reverse=True)
        if self.policy == ALL:
            return available
        if self.policy == SPECIFIC:
            return [v for v in available if v in self.versions]
        return available[:self.num_versions]


def _spec(config: model_server_config_pb2.ModelConfig, relative_to: str) -> ModelSpec:
    if not config.name:
        raise ConfigError("a model config has no name")
    if not config.base_path:
        raise ConfigError(f"model {config.name!r} has no base_path")
    if config.model_platform not in ("", "tensorflow"):
        raise ConfigError(f"model {config.name!r}: model_platform {config.model_platform!r} is "
                          "not served (only 'tensorflow' SavedModels)")
    base_path = config.base_path
    if "://" not in base_path and not os.path.isabs(base_path):
        base_path = os.path.join(relative_to, base_path)
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice") or LATEST
    num_versions = policy.latest.num_versions if choice == LATEST else 1
    if choice == LATEST and policy.HasField("latest") and num_versions < 1:
        raise ConfigError(f"model {config.name!r}: latest.num_versions must be >= 1")
    versions = tuple(int(v) for v in policy.specific.versions) if choice == SPECIFIC else ()
    if choice == SPECIFIC and not versions:
        raise ConfigError(f"model {config.name!r}: a specific policy needs versions")
    return ModelSpec(name=config.name, base_path=base_path, policy=choice,
                     num_versions=max(num_versions, 1), versions=versions,
                     labels={str(k): int(v) for k, v in config.version_labels.items()})


def parse(text: str, relative_to: str = ".") -> list[ModelSpec]:
    """The models of a text-format ModelServerConfig (relative base paths are resolved
    against `relative_to`, the config file's directory).

    Raises:
      ConfigError: a syntax error, a custom_model_config, a model without name or base path,
        two models of one name, or a bad version policy.
    """
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
        raise ConfigError(f"bad model config: {e}") from e
    return specs_of(config, relative_to)


def specs_of(config: model_server_config_pb2.ModelServerConfig,
             relative_to: str = ".") -> list[ModelSpec]:
    """The models of a parsed ModelServerConfig (see `parse`)."""
    if config.WhichOneof("config") == "custom_model_config":
        raise ConfigError("custom_model_config is not supported; use model_config_list")
    specs = [_spec(c, relative_to) for c in config.model_config_list.config]
    names = [s.name for s in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"model names {duplicated} appear more than once")
    if not specs:
        raise ConfigError("the model config lists no model")
    return specs


def read(path: str) -> list[ModelSpec]:
    """The models of the config file at `path` (see `parse`)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the model config file {path!r}: {e}") from e
    return parse(text, relative_to=os.path.dirname(os.path.abspath(path)))
