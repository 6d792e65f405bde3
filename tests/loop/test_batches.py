"""`mlops feedback import` and `collect`: labelled files and posted labels become new data batches; a bad file
fails with one line and writes nothing."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from mlops.core.batch_files import list_batches, read_batch, read_batches
from mlops.serving.feedback import record_feedback
from mlops.serving.traffic import TrafficLog, new_ids
from tests.helpers import BIN, ROOT, run_cmd

LABELS = ["billing", "delivery", "technical", "account", "feedback"]


@pytest.fixture
def project(tmp_path, repo_params):
    repo_params["feedback"]["batches_dir"] = str(tmp_path / "batches")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    return tmp_path


def mlops(project, *args, check=True):
    return run_cmd([str(BIN / "mlops"), *args], cwd=project, env={"PATH": str(BIN), "PYTHONPATH": str(ROOT),
                                                                 "MLOPS_FEEDBACK_DIR": str(project / "fb")},
                   check=check)


def test_import_csv_and_jsonl_write_one_batch_each(project):
    (project / "labels.csv").write_text('text,label\n"Charged twice, refund please",billing\nParcel lost,delivery\n')
    (project / "labels.jsonl").write_text(json.dumps({"text": "App crashes", "label": "technical", "id": "q1"}) + "\n")
    out = mlops(project, "feedback", "import", "labels.csv").stdout
    assert "imported 2 labelled texts" in out
    mlops(project, "feedback", "import", "labels.jsonl")
    batches = list_batches(project / "batches")
    assert len(batches) == 2 and batches[0].name.endswith("-import-labels.csv")
    first = read_batch(batches[0])
    assert first["text"].tolist() == ["Charged twice, refund please", "Parcel lost"]
    assert all(len(i) == 26 for i in first["id"])  # ids made for rows that had none
    assert read_batch(batches[1])["id"].tolist() == ["q1"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("nolabel.csv", b"text,category\nhello,billing\n", "no column 'label' (columns: text, category)"),
    ("unknown.csv", b"text,label\nhello,billing\nworld,refund\n", "row 2: label 'refund' is not one of the model"),
    ("empty.csv", b"", "empty file"),
    ("header-only.csv", b"text,label\n", "no rows"),
    ("latin1.csv", "text,label\ncaf\u00e9,billing\n".encode("latin-1"), "not UTF-8 (byte 0xe9 at position 14)"),
    ("blank.jsonl", b'{"text": " ", "label": "billing"}\n', "row 1: text is empty"),
    ("broken.jsonl", b'{"text": "a", "label": "billing"}\n{oops\n', "line 2 is not JSON"),
    ("labels.txt", b"text,label\na,billing\n", "expected a .csv or .jsonl file"),
])
def test_a_bad_file_fails_with_one_line_and_writes_nothing(project, name, content, message):
    (project / name).write_bytes(content)
    result = mlops(project, "feedback", "import", name, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (project / "batches").exists() or not any((project / "batches").iterdir())


def test_collect_turns_posted_labels_into_a_batch_once(project):
    ids = new_ids(3)
    TrafficLog(project / "traffic").append(["parcel lost", "charged twice", "app crashes"],
                                           [{"id": i, "label": "billing", "score": 0.4, "model_version": "m:1"}
                                            for i in ids], 2.0)
    body = json.dumps([{"id": ids[0], "label": "delivery"}, {"id": ids[1], "label": "billing"}]).encode()
    record_feedback(body, LABELS, 10, project / "traffic", project / "fb")
    assert "2 new labels" in mlops(project, "feedback", "collect").stdout
    assert "0 new labels" in mlops(project, "feedback", "collect").stdout  # nothing new: no second batch
    record_feedback(json.dumps({"id": ids[0], "label": "billing"}).encode(), LABELS, 10, project / "traffic",
                    project / "fb")  # relabelled after collection
    mlops(project, "feedback", "collect")
    assert len(list_batches(project / "batches")) == 2
    rows = read_batches(project / "batches")
    assert sorted(zip(rows["id"], rows["label"], strict=True)) == sorted([(ids[0], "billing"), (ids[1], "billing")])


def test_in_a_dvc_project_a_new_batch_is_dvc_added_so_push_sends_it(tmp_path, repo_params):
    # given a git + DVC project whose batches directory is data/feedback
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "DVC_NO_ANALYTICS": "1",
           "HOME": str(tmp_path)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    run_cmd(["git", "init", "-q"], cwd=tmp_path, env=env)
    run_cmd([str(BIN / "dvc"), "init", "-q"], cwd=tmp_path, env=env)
    (tmp_path / "labels.csv").write_text("text,label\nParcel lost,delivery\n")
    # when a labelled file is imported
    out = run_cmd([str(BIN / "mlops"), "feedback", "import", "labels.csv"], cwd=tmp_path, env=env).stdout
    # then the batch is in DVC's cache and data/feedback.dvc records it
    assert "data/feedback tracked by DVC in data/feedback.dvc" in out, out
    pointer = yaml.safe_load((tmp_path / "data/feedback.dvc").read_text())["outs"][0]
    assert pointer["path"] == "feedback" and pointer["nfiles"] == 1
    status = run_cmd([str(BIN / "dvc"), "status", "data/feedback.dvc"], cwd=tmp_path, env=env).stdout
    assert "up to date" in status
    # and `dvc push` sends it to the remote
    run_cmd([str(BIN / "dvc"), "remote", "add", "-d", "store", str(tmp_path / "remote")], cwd=tmp_path, env=env)
    run_cmd([str(BIN / "dvc"), "push", "-q"], cwd=tmp_path, env=env)
    stored = [p for p in (tmp_path / "remote").rglob("*") if p.is_file()]
    assert len(stored) == 2  # the batch and the directory listing
