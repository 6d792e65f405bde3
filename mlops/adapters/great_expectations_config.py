"""Great Expectations' progress-bar switch, which 1.x exposes only as an internal config class.

An ephemeral context prints a progress bar per validation into the stage's
log unless `progress_bars` is set to this class; tests/adapters/
test_great_expectations_config.py fails, naming it, when an upgrade moves it.
"""

from __future__ import annotations

from typing import Any

from great_expectations.data_context.types.base import ProgressBarsConfig

WRITTEN_FOR = "great-expectations 1.24.1"


def silence_progress_bars(context: Any) -> None:
    """No progress bars from this context: stage logs stay one line per finding."""
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
