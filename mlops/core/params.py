"""`mlops params apply PRESET`: merge a preset into params.yaml, keeping its comments.

Switching a dataset touches several keys at once (paths, column mapping,
label names); a preset file names them together. The merged result is
validated before params.yaml is replaced, so a bad preset changes nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from mlops.core.dotted import nest
from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path
from mlops.core.settings import parse_settings


def merge(target: Any, overlay: dict[str, Any]) -> None:
    """Deep-merge `overlay` into the round-trip mapping `target`, in place."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def merge_into_params(overlay: dict[str, Any], params: Path, origin: str) -> str:
    """Deep-merge `overlay` into params.yaml, keeping its comments; write only if the result validates."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments and key order survive
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True  # and quoting, and `null` below: only the changed values differ in a diff
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    document = yaml.load(params.read_text(encoding="utf-8"))
    merge(document, overlay)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    text = buffer.getvalue()
    parse_settings(YAML(typ="safe").load(text), origin=f"{params} + {origin}")
    with atomic_path(params) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text


def apply(preset: Path, params: Path) -> list[str]:
    """Merge a preset into params.yaml, keeping its comments; the dotted keys it changed."""
    from ruamel.yaml import YAML

    if not preset.is_file():
        raise MlopsError(f"preset not found: {preset}")
    overlay = YAML(typ="safe").load(preset.read_text(encoding="utf-8"))
    if not isinstance(overlay, dict):
        raise MlopsError(f"{preset}: expected a mapping of settings")
    merge_into_params(overlay, params, str(preset))
    return sorted(overlay)


def apply_overrides(overrides: dict[str, Any], params: Path, origin: str = "overrides") -> str:
    """Merge dotted overrides (`train.epochs: 1`) into params.yaml, validated first; return the new text.

    Like `dvc exp run -S key=value`: the workspace's params.yaml is changed
    (comments kept), so `dvc repro` and the stages see the new values. A value
    that the settings refuse changes nothing, and the message names its key.
    """
    return merge_into_params(nest(overrides), params, origin)
