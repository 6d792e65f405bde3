"""StageIO: a stage's paths from its dvc.yaml command, overridden one field at a time, refused when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops.core.errors import MlopsError
from mlops.core.stage_io import StageIO


class SplitIO(StageIO):
    stage = "split"
    data: Path
    out_dir: Path


def write_dvc_yaml(project: Path, command: str) -> None:
    (project / "dvc.yaml").write_text(f"stages:\n  split:\n    cmd: {command}\n", encoding="utf-8")


def test_paths_come_from_the_stage_command(tmp_path: Path) -> None:
    # given a dvc.yaml whose split stage passes two paths
    write_dvc_yaml(tmp_path, "mlops split --data data/validated.parquet --out-dir data/split")
    # when the IO is built from it
    io = SplitIO.from_dvc(tmp_path)
    # then each option is the field of the same name
    assert io.data == Path("data/validated.parquet") and io.out_dir == Path("data/split")


def test_an_override_replaces_one_field_and_none_keeps_the_declared_one(tmp_path: Path) -> None:
    write_dvc_yaml(tmp_path, "mlops split --data data/validated.parquet --out-dir data/split")
    io = SplitIO.from_dvc(tmp_path, out_dir=Path("elsewhere"), data=None)
    assert io.out_dir == Path("elsewhere") and io.data == Path("data/validated.parquet")


def test_an_option_the_io_does_not_declare_is_refused_by_name(tmp_path: Path) -> None:
    write_dvc_yaml(tmp_path, "mlops split --data d.parquet --out-dir s --extra x")
    with pytest.raises(MlopsError, match="--extra"):
        SplitIO.from_dvc(tmp_path)


def test_a_missing_path_is_refused_by_name(tmp_path: Path) -> None:
    write_dvc_yaml(tmp_path, "mlops split --data d.parquet")
    with pytest.raises(MlopsError, match="out_dir"):
        SplitIO.from_dvc(tmp_path)


def test_the_io_is_frozen_and_forbids_unknown_fields() -> None:
    io = SplitIO.build(data=Path("a"), out_dir=Path("b"))
    with pytest.raises(ValidationError, match="frozen"):
        io.data = Path("c")  # type: ignore[misc]
    with pytest.raises(MlopsError, match="typo"):
        SplitIO.build(data=Path("a"), out_dir=Path("b"), typo=Path("c"))
