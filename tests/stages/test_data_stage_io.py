"""The data stages' IO declares exactly the paths their dvc.yaml commands pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.core.pipeline import stage_paths
from mlops.core.stage_io import field_of
from mlops.stages.generate import GenerateIO
from mlops.stages.ingest import IngestIO
from mlops.stages.monitor import MonitorIO
from mlops.stages.validate import ValidateIO
from tests.helpers import ROOT


@pytest.mark.parametrize("io_class", [GenerateIO, IngestIO, ValidateIO, MonitorIO])
def test_the_io_is_built_from_the_stage_command(io_class):
    # when the IO is built from the project's dvc.yaml, every path the command passes is its field
    io = io_class.from_dvc(ROOT)
    passed = stage_paths(ROOT, io_class.stage)
    assert {field_of(option): Path(value) for option, value in passed.items()} == {
        name: value for name, value in dict(io).items() if value is not None}
    # and the IO declares no path the command leaves out
    assert set(io_class.model_fields) == {field_of(option) for option in passed}
