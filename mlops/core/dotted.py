"""Dotted params keys (`train.epochs`): read one from nested settings, or nest a set of them.

The one helper for the notation that dvc.yaml templates, `dvc exp run -S`,
trigger parameters and presets share. Imports nothing heavy: the DAG file
uses it at parse time.
"""

from __future__ import annotations

from typing import Any

from mlops.core.errors import MlopsError

MISSING: Any = object()


def get_dotted(mapping: dict[str, Any], dotted: str, default: Any = MISSING) -> Any:
    """mapping["train"]["epochs"] for "train.epochs"; `default` when a part is missing, else KeyError(dotted)."""
    value: Any = mapping
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            if default is MISSING:
                raise KeyError(dotted)
            return default
        value = value[part]
    return value


def nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """{"train.epochs": 1} -> {"train": {"epochs": 1}}."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        parts = key.split(".")
        if not all(parts):
            raise MlopsError(f"override {key!r}: not a dotted params key")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise MlopsError(f"override {key!r} conflicts with another override")
        if isinstance(node.get(parts[-1]), dict):
            raise MlopsError(f"override {key!r} conflicts with another override")
        node[parts[-1]] = value
    return nested
