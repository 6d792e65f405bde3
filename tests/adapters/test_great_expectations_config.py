"""The Great Expectations adapter: its internal config class must still switch progress bars off."""

from __future__ import annotations

import great_expectations as gx

from mlops.adapters.great_expectations_config import WRITTEN_FOR, silence_progress_bars


def test_progress_bars_are_switched_off_on_an_ephemeral_context():
    context = gx.get_context(mode="ephemeral")
    silence_progress_bars(context)
    bars = context.variables.progress_bars
    assert bars is not None and bars.globally is False, \
        f"great_expectations ProgressBarsConfig no longer applies (written for {WRITTEN_FOR})"
