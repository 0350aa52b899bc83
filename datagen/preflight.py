"""Checks ``datagen run`` makes before and after a flow, so a run fails early and loudly.

- ``missing_models(params)``: a Hugging Face backend whose model is neither a
  local folder nor in the local hub cache cannot load offline; say so before
  any stage runs (not 800 lines later, after ingest has committed).
- ``empty_versions(result, root)``: a stage that wrote a 0-row version (an
  empty selection, an empty mix) is a failure unless the user allows it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

#: How to make the tiny random model the CPU configs use.
TINY_HINT = "python -c \"from datagen.tinymodel import save_tiny; save_tiny('{path}')\""


def _hf_models(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        if node.get("kind") == "hf" and isinstance(node.get("model"), str):
            yield f"{where}.model".lstrip("."), node["model"]
        for k, v in node.items():
            yield from _hf_models(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _hf_models(v, f"{where}[{i}]")


def _in_hub_cache(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id: certainly not cached
        return False
    return isinstance(found, str)


def missing_models(params: Any) -> list[str]:
    """One line per ``hf`` backend model that cannot be loaded here: ``key: why; how to fix``."""
    data = params.model_dump(mode="json") if hasattr(params, "model_dump") else params
    out = []
    for key, model in _hf_models(data):
        if Path(model).expanduser().is_dir() or _in_hub_cache(model):
            continue
        if model.startswith((".", "/", "~")) or Path(model).parts[:1] == ("models",):
            fix = f"make it first: {TINY_HINT.format(path=model)}" if Path(model).name == "tiny" \
                else "check the path"
            out.append(f"{key}: no model folder {model!r}; {fix}")
        else:
            out.append(f"{key}: {model!r} is neither a local folder nor in the local Hugging Face cache, "
                       "and this machine loads models offline; download it once or give a local folder")
    return out


def _refs(result: Any) -> list[str]:
    """Every ``NAME@VERSION``-looking string in a flow's result (nested dicts and lists)."""
    if isinstance(result, str):
        return [result] if "@" in result else []
    if isinstance(result, Mapping):
        return [r for v in result.values() for r in _refs(v)]
    if isinstance(result, (list, tuple)):
        return [r for v in result for r in _refs(v)]
    return []


def empty_versions(result: Any, root: str | None) -> list[str]:
    """The ``NAME@VERSION`` refs in a flow's result whose version has 0 rows."""
    from datagen.store import StoreError, open_store

    store = open_store(root)
    out = []
    for ref in _refs(result):
        try:
            m = store.resolve(ref)
        except (StoreError, ValueError):
            continue
        if m.rows == 0:
            out.append(f"{m.ref} ({m.stage})")
    return out


__all__ = ["TINY_HINT", "check_root", "empty_versions", "missing_models"]


def check_root(root: str | None) -> None:
    """Reach the store root once before any stage runs: a missing bucket, bad
    credentials or a wrong endpoint fail here in one line (``StoreError``)."""
    from datagen.store import open_store

    open_store(root).datasets()
