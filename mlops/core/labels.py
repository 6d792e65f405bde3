"""The label set a project declares, read from its settings: what validation and the labelling queue enforce."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.core.settings import Settings


def declared_labels(settings: Settings) -> list[str] | None:
    """The label set to enforce: declared in validate.labels, else the names labels map to."""
    if settings.validate_.labels is not None:
        return list(settings.validate_.labels)
    if settings.data.source.label_names:
        return sorted(set(settings.data.source.label_names.values()))
    return None
