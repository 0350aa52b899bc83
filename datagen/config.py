"""The one config loader: a YAML file plus dotted ``--set key=value`` overrides -> a validated pydantic model.

Used by ``datagen run`` (flow parameters), the trainer command lines
(``python -m trainers.sft|grpo``) and ``datagen filter``. The models
themselves live beside what they configure. Errors say which key is wrong,
where it came from (the YAML file or the ``--set`` flag), the closest known
key when it looks like a typo, and where to see every key.

It also declares how a stage's parameters split into three parts (see
``flows.common``): plain fields are *what* a stage computes (its config, the
only part of its run key); ``where()`` fields say where it reads and writes;
``how()`` fields how it runs (workers, batch sizes, fan-out, GPU limit).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError

M = TypeVar("M", bound=BaseModel)

_PART = "stage_part"


class ConfigError(ValueError):
    """A config that cannot run; the message names the key, its source and the fix."""


# --------------------------------------------------------------------------- the three parts


def where(default: Any = ..., **kwargs: Any) -> Any:
    """A parameter saying where a stage reads or writes (root, input, output): not in its config."""
    return Field(default, json_schema_extra={_PART: "where"}, **kwargs)


def how(default: Any = ..., **kwargs: Any) -> Any:
    """A parameter saying how a stage runs (workers, batch size, fan-out, GPU limit): not in its
    config, so changing it resumes the same version instead of computing a new one."""
    return Field(default, json_schema_extra={_PART: "how"}, **kwargs)


def part_of(model: type[BaseModel], name: str) -> str:
    """``"what"``, ``"where"`` or ``"how"`` for field ``name`` of ``model``."""
    extra = model.model_fields[name].json_schema_extra
    return extra.get(_PART, "what") if isinstance(extra, dict) else "what"


def what_of(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON without its ``where``/``how`` fields, nested models included: what it computes."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        if part_of(type(model), name) != "what":
            continue
        value = getattr(model, name)
        out[name] = what_of(value) if isinstance(value, BaseModel) else model.model_dump(
            mode="json", include={name})[name]
    return out


# --------------------------------------------------------------------------- loading


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["generate.generation.n=4", "root=s3://b/p"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. --set workers=2)")
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
    """``override`` on top of ``base``; nested mappings merge key by key."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping (an empty file is ``{}``); ``ConfigError`` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def _dotted(data: Any, prefix: str = "") -> set[str]:
    if not isinstance(data, Mapping):
        return {prefix} if prefix else set()
    out = {prefix} if prefix else set()
    for k, v in data.items():
        out |= _dotted(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model that holds the last key of ``loc`` (for "did you mean")."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        current = _submodel(current.model_fields[part].annotation)
    return current


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            sub = _submodel(arg)
            if sub is not None:
                return sub
    return None


def build(model: type[M], data: Mapping[str, Any], *, source: str = "config", set_keys: frozenset[str] = frozenset(),
          help_hint: str = "") -> M:
    """Validate ``data`` into ``model``; ``ConfigError`` with one line per bad key.

    ``set_keys``: the dotted keys that came from ``--set`` (an error there is blamed on
    ``--set KEY``, any other on ``source``); ``help_hint``: where to see every key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            key = ".".join(str(p) for p in loc) or "(top level)"
            origin = f"--set {key}" if _from_set(key, set_keys) else f"{source}: {key}"
            if err["type"] == "extra_forbid" or err["type"] == "extra_forbidden":
                holder = _model_at(model, loc)
                close = difflib.get_close_matches(str(loc[-1]), list(holder.model_fields), n=1) if holder else []
                hint = f"did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?" if close else \
                    "check the spelling"
                lines.append(f"  {origin}: unknown key ({hint}{'; ' + help_hint if help_hint else ''})")
            else:
                lines.append(f"  {origin}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"invalid config for {model.__name__}:\n" + "\n".join(lines)) from None


def _from_set(key: str, set_keys: frozenset[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in set_keys)


def source_keys(overrides: Mapping[str, Any]) -> frozenset[str]:
    """The dotted keys a ``parse_set`` result sets (so ``build`` can blame ``--set`` for them)."""
    return frozenset(_dotted(overrides))


def load(model: type[M], config_file: str | Path | None = None, sets: Sequence[str] = (), *,
         help_hint: str = "") -> M:
    """YAML file (optional) + dotted ``--set`` overrides -> a validated ``model``; ``ConfigError`` otherwise."""
    data: dict[str, Any] = load_yaml(config_file) if config_file else {}
    overrides = parse_set(sets)
    set_keys = source_keys(overrides)
    return build(model, deep_merge(data, overrides), source=str(config_file) if config_file else "config",
                 set_keys=set_keys, help_hint=help_hint)


def describe(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of ``model`` (nested sections dotted) with its type, default and description."""
    lines = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _submodel(field.annotation)
        type_name = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
        default = "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)!r}"
        if sub is not None and default != "required" and len(default) > 60:
            default = "default: see below"
        desc = f"  # {field.description}" if field.description else ""
        lines.append(f"{key}: {type_name} ({default}){desc}")
        if sub is not None:
            lines.extend(describe(sub, f"{key}."))
    return lines


__all__ = ["ConfigError", "build", "deep_merge", "describe", "how", "load", "load_yaml", "parse_set", "what_of",
           "where"]
