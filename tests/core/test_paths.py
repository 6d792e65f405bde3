"""Paths from outside are confined to given folders, symlinks followed (mlops/core/paths.py)."""

from __future__ import annotations

import pytest

from mlops.core.errors import MlopsError
from mlops.core.paths import confine


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    for folder in ("data/feedback", "reports", ".bentoml"):
        (project / folder).mkdir(parents=True)
    (project / "data" / "new.csv").write_text("text\nhello\n")
    return project


def test_a_relative_path_inside_an_allowed_folder_passes_resolved(project):
    # given a path inside data/, with a harmless `..` that stays inside
    # when it is confined to data/
    target = confine("data/sub/../new.csv", project, ["data"], "param `input`")
    # then it comes back resolved and absolute
    assert target == (project / "data" / "new.csv").resolve()
    assert confine("reports/batch/r1/out.csv", project, ["reports", "data"], "param `output`") == (
        project / "reports/batch/r1/out.csv").resolve()


@pytest.mark.parametrize("given", ["/etc/passwd", "../outside.csv", "data/../../outside.csv", "params.yaml",
                                   ".bentoml/registry.json", "data/../.bentoml/registry.json"])
def test_absolute_dotdot_and_other_folders_are_refused_naming_the_parameter_and_the_folders(project, given):
    with pytest.raises(MlopsError) as raised:
        confine(given, project, ["reports", "data"], "param `output`")
    message = str(raised.value)
    assert message.startswith(f"param `output` {given}: outside the folders it may use")
    assert message.endswith("give a path inside reports/ or data/") and "\n" not in message


def test_a_symlink_that_leads_out_of_an_allowed_folder_is_refused(project, tmp_path):
    # given links inside data/ to the registry and to a folder outside the project
    (project / "data" / "registry").symlink_to(project / ".bentoml")
    (tmp_path / "elsewhere").mkdir()
    (project / "data" / "out").symlink_to(tmp_path / "elsewhere")
    (project / "data" / "file.csv").symlink_to(project / ".bentoml" / "registry.json")
    # then paths through them are refused, though they look inside data/
    for given in ("data/registry/registry.json", "data/out/x.csv", "data/file.csv"):
        with pytest.raises(MlopsError, match="outside the folders it may use"):
            confine(given, project, ["data"], "param `output`")


def test_a_refused_folder_inside_an_allowed_one_is_refused(project):
    (project / "data" / "fb").symlink_to(project / "data" / "feedback")
    for given in ("data/feedback/batch-20260101T000000Z-x.csv", "data/feedback", "data/fb/batch.csv"):
        with pytest.raises(MlopsError, match=r"inside a folder it may not use; give a path inside reports/ or "
                                             r"data/ \(not data/feedback/\)"):
            confine(given, project, ["reports", "data"], "param `output`", refused=["data/feedback"])
    assert confine("data/scored.csv", project, ["reports", "data"], "param `output`", refused=["data/feedback"])


def test_an_empty_path_or_a_nul_byte_is_not_a_path(project):
    for given in ("", " ", "data/a\x00.csv"):
        with pytest.raises(MlopsError, match="not a path"):
            confine(given, project, ["data"], "param `input`")
