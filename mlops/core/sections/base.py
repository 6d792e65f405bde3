"""The base of every settings section: frozen, and an undeclared key is an error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """Frozen, and a key that is not declared is an error: a typo in params.yaml fails at once, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def format_validation_error(error: ValidationError, origin: str) -> str:
    """Render pydantic's errors as `origin: dotted.key: problem` lines."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{origin}: {key}: {message}")
    return "; ".join(lines)
