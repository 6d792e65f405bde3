"""The parameter reference, generated from the settings model: docs/reference/params.md and `mlops params explain`.

The settings model already knows every key, its type, default and bounds, and
carries each key's description; rendering the reference from it means a field
added there appears in the docs (and a field without a description fails a
test) instead of a hand-kept list drifting away from what is validated.

    python -m mlops.core.params_reference          # rewrite docs/reference/params.md
    python -m mlops.core.params_reference --check  # exit 1 when the committed page is stale
"""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mlops.core.dotted import get_dotted
from mlops.core.errors import MlopsError
from mlops.core.settings import DEFAULT_PARAMS, Settings

REFERENCE_PAGE = Path("docs/reference/params.md")
REGENERATE = "python -m mlops.core.params_reference"


@dataclass(frozen=True)
class ParamDoc:
    """One parameter (or section) as the reference shows it."""

    key: str  # dotted, as params.yaml nests it; `[]` marks the items of a list of mappings
    type: str
    default: str | None  # None: required, params.yaml must give it
    constraints: str
    description: str
    section: bool = False
    shipped: str | None = None  # the value params.yaml ships, when it gives one


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`; the annotation itself and False otherwise."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) < len(get_args(annotation)):
            return (members[0] if len(members) == 1 else Union[tuple(members)]), True  # noqa: UP007
    return annotation, False


def describe_type(annotation: Any) -> str:
    """A reader's name for a field's type: `integer or null`, `list of string`, `one of `a`, `b``."""
    inner, optional = _without_none(annotation)
    if optional:
        return f"{describe_type(inner)} or null"
    origin = get_origin(inner)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(inner))
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(arg).removeprefix("one of ") for arg in get_args(inner))
    if origin is tuple:
        return f"list of {describe_type(get_args(inner)[0])}"
    if origin is dict:
        key, value = get_args(inner)
        return f"mapping of {describe_type(key)} to {describe_type(value)}"
    if _is_model(inner):  # a settings section, or the items of a list of mappings (model.text_repairs)
        return "section" if inner.__name__.endswith("Settings") else "mapping"
    names = {int: "integer", float: "number", str: "string", bool: "boolean"}
    return names.get(inner, getattr(inner, "__name__", str(inner)))


def describe_constraints(field: FieldInfo) -> str:
    """The bounds pydantic enforces on a field, as `>= 1, < 0.5`."""
    parts = []
    for item in field.metadata:
        for attribute, shown in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(item, attribute, None) is not None:
                parts.append(f"{shown} {getattr(item, attribute)}")
        if getattr(item, "min_length", None) is not None:
            noun = "character" if field.annotation is str else "item"
            parts.append(f"at least {item.min_length} {noun}{'s' if item.min_length != 1 else ''}")
        if getattr(item, "max_length", None) is not None:
            parts.append(f"at most {item.max_length}")
        if getattr(item, "pattern", None) is not None:
            parts.append(f"matches `{item.pattern}`")
    return ", ".join(parts)


def render_value(value: Any) -> str:
    """A value as it would be written in params.yaml (YAML flow style)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    if isinstance(value, tuple):
        value = list(value)
    dumped: str = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return dumped.strip().removesuffix(
        "\n...").removesuffix(" ...").strip()


def _default_of(field: FieldInfo) -> str | None:
    if field.is_required():
        return None
    return render_value(field.get_default(call_default_factory=True))


def walk(model: type[BaseModel] = Settings, raw: dict[str, Any] | None = None, prefix: str = "",
         seen: dict[type, str] | None = None) -> list[ParamDoc]:
    """Every parameter of `model`, depth first in declaration order; a nested model's fields under its key.

    A model class met a second time (data.test_source has data.source's fields) is listed as one row that
    points at the first, so each field is described once."""
    seen = {} if seen is None else seen
    docs: list[ParamDoc] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        annotation, _ = _without_none(field.annotation)
        item = get_args(annotation)[0] if get_origin(annotation) is tuple and get_args(annotation) else None
        shipped = get_dotted(raw, key, None) if raw is not None and "[]" not in key else None
        nested = annotation if _is_model(annotation) else item if _is_model(item) else None
        description = field.description or ""
        if nested is not None and nested in seen:
            description = f"{description} The same fields as `{seen[nested]}`.".strip()
        is_section = nested is annotation and nested is not None and nested not in seen
        docs.append(ParamDoc(key=key, type=describe_type(field.annotation), default=_default_of(field),
                             constraints=describe_constraints(field), description=description, section=is_section,
                             shipped=None if shipped is None or isinstance(shipped, dict) else render_value(shipped)))
        if nested is not None and nested not in seen:
            seen[nested] = key
            docs += walk(nested, raw, f"{key}." if nested is annotation else f"{key}[].", seen)
    return docs


def undescribed(model: type[BaseModel] = Settings) -> list[str]:
    """The dotted keys of fields without a description (what the reference test refuses)."""
    return [doc.key for doc in walk(model) if not doc.description]


def read_raw(params: Path) -> dict[str, Any] | None:
    """params.yaml as a plain mapping, for the shipped values; None when there is none to read."""
    if not params.is_file():
        return None
    raw = yaml.safe_load(params.read_text(encoding="utf-8"))
    return raw if isinstance(raw, dict) else None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default_cell(doc: ParamDoc) -> str:
    if doc.section:
        return "required" if doc.default is None else "optional"
    default = "required" if doc.default is None else f"`{doc.default}`"
    if doc.shipped is not None and doc.shipped != doc.default:
        default += f"<br>params.yaml: `{doc.shipped}`"
    return default


def render_reference(model: type[BaseModel] = Settings, raw: dict[str, Any] | None = None) -> str:
    """The markdown of docs/reference/params.md: one table per section, every parameter once."""
    docs = walk(model, raw)
    lines = [
        "---",
        "hide:",
        "  - navigation",  # the five-column tables need the width; the page's own sections stay in its TOC
        "---",
        "",
        "# Parameters",
        "",
        f"<!-- Generated from the settings sections (mlops/core/sections/) by `{REGENERATE}`: edit the descriptions "
        "there. -->",
        "",
        "Every knob of the lifecycle lives in `params.yaml`, validated strictly by the settings model "
        "(`mlops/core/settings.py`, one module per section in `mlops/core/sections/`): an unknown key or a value "
        "outside its bounds fails at once, naming the key. "
        "This page is generated from that model, so it lists exactly what is validated.",
        "",
        "- *Default* is the model's default when `params.yaml` leaves the key out; *required* keys must be in "
        "`params.yaml`, whose shipped value is shown below the default where it differs.",
        "- Change a value for one experiment with `dvc exp run -S train.lr=3e-5`, for good by editing "
        "`params.yaml` (or `mlops params apply PRESET`); `mlops params explain KEY` prints one entry of this page.",
        "",
    ]
    top = [doc for doc in docs if "." not in doc.key]
    for head in top:
        members = [doc for doc in docs if doc.key.startswith(head.key + ".") or doc.key.startswith(head.key + "[]")]
        lines += [f"## `{head.key}`", ""] + ([head.description, ""] if members else [])
        if not members:  # a top-level scalar (seed): its own one-row table
            members = [head]
        lines += ["| Parameter | Type | Default | Constraints | Description |", "| --- | --- | --- | --- | --- |"]
        for doc in members:
            description = doc.description + (" (a section: its keys follow)" if doc.section else "")
            lines.append(f"| `{doc.key}` | {_cell(doc.type)} | {_cell(_default_cell(doc))} | "
                         f"{_cell(doc.constraints)} | {_cell(description)} |")
        lines.append("")
    return "\n".join(lines)


def explain(key: str, params: Path = DEFAULT_PARAMS, model: type[BaseModel] = Settings) -> str:
    """One parameter's entry as plain text: type, default, constraints, description (a section: its keys)."""
    docs = walk(model, read_raw(params))
    found = {doc.key: doc for doc in docs}
    doc = found.get(key.strip())
    if doc is None:
        close = difflib.get_close_matches(key, list(found), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; docs/reference/params.md lists every key"
        raise MlopsError(f"unknown params key: {key}{hint}")
    if doc.default is None:
        default = "required (params.yaml must give it)"
    else:
        default = "optional (each key has a default)" if doc.section else doc.default
    lines = [doc.key, f"  type:        {doc.type}", f"  default:     {default}"]
    if doc.shipped is not None:
        lines.append(f"  params.yaml: {doc.shipped}")
    lines.append(f"  constraints: {doc.constraints or 'none beyond the type'}")
    lines += textwrap.wrap(doc.description, 100, initial_indent="  ", subsequent_indent="  ")
    if doc.section:
        keys = [other.key for other in docs if other.key.startswith(doc.key + ".") and
                other.key.count(".") == doc.key.count(".") + 1]
        lines += textwrap.wrap("keys: " + ", ".join(keys), 100, initial_indent="  ", subsequent_indent="        ")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the parameter reference page, or with --check say whether it is stale (exit 1)."""
    parser = argparse.ArgumentParser(description="Write (or check) the parameter reference page.")
    parser.add_argument("--out", type=Path, default=REFERENCE_PAGE)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="The params file whose values ship.")
    parser.add_argument("--check", action="store_true", help="Exit 1 when the page differs from what is generated.")
    args = parser.parse_args(argv)
    text = render_reference(Settings, read_raw(args.params))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"params reference: wrote {args.out} ({len(walk(Settings))} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
