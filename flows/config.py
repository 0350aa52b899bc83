"""Loading a flow's typed parameters from YAML and ``--set key=value`` overrides.

The parameter models themselves live beside their flows (they are the flows'
Prefect parameters). This module only turns a YAML file plus dotted overrides
into a validated model — before any flow run exists — with errors that say
which key is wrong and what to change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and the fix."""


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["generate.n=4", "root=s3://b/p"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. --set generate.n=4)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set both as a value and as a section")
        node[parts[-1]] = value
    return out


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def build(model: type[M], data: Mapping[str, Any], *, source: str = "config") -> M:
    """Validate ``data`` into ``model``; a readable error per bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                lines.append(f"  {loc}: unknown key (check the spelling; see `datagen run FLOW --help-config`)")
            else:
                lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"invalid {source} for {model.__name__}:\n" + "\n".join(lines)) from None


def load(model: type[M], config_file: str | Path | None = None, sets: Sequence[str] = ()) -> M:
    """YAML file (optional) + ``--set`` overrides -> a validated parameter model."""
    data: dict[str, Any] = load_yaml(config_file) if config_file else {}
    data = deep_merge(data, parse_set(sets))
    return build(model, data, source=str(config_file) if config_file else "--set values")
