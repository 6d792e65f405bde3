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
from tests.helpers import BIN, ROOT, invoke_cli, run_cmd

LABELS = ["billing", "delivery", "technical", "account", "feedback"]


@pytest.fixture
def project(tmp_path, repo_params):
    repo_params["feedback"]["batches_dir"] = str(tmp_path / "batches")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    return tmp_path


def mlops(project, *args, check=True):
    """The command in this process (its messages and exit codes are what these tests read); `mlops` as a child
    process, with its real exit status, is tested in tests/test_cli.py."""
    return invoke_cli(list(args), cwd=project, env={"MLOPS_FEEDBACK_DIR": str(project / "fb")}, check=check)


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
    ("labels.txt", b"text,label\na,billing\n", "expected a .csv, .jsonl or Label Studio .json file"),
])
def test_a_bad_file_fails_with_one_line_and_writes_nothing(project, name, content, message):
    (project / name).write_bytes(content)
    result = mlops(project, "feedback", "import", name, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (project / "batches").exists() or not any((project / "batches").iterdir())


# --- Label Studio exports ---------------------------------------------------------------------------------------

def label_studio_task(task_id, text, queue_id, annotations, prediction="billing"):
    """One task as Label Studio's JSON export writes it (https://labelstud.io/guide/task_format.html): Label
    Studio's own `id`, the imported `data` (the queue's text and id), the `annotations` (each with its `result`
    regions, `was_cancelled`, timestamps and annotator) and the `predictions` it was imported with."""
    def choice(label):
        return [{"id": f"r{task_id}", "from_name": "label", "to_name": "text", "type": "choices",
                 "origin": "manual", "value": {"choices": [label]}}]

    return {"id": task_id, "project": 7, "created_at": "2026-12-01T10:00:00.000000Z",
            "data": {"text": text, "id": queue_id, "prediction": prediction, "confidence": 0.41,
                     "suggested_label": ""},
            "annotations": [{"id": 100 + task_id * 10 + n, "completed_by": 1, "task": task_id,
                             "result": choice(label) if label else [], "was_cancelled": cancelled,
                             "ground_truth": False, "lead_time": 3.2, "created_at": at, "updated_at": at}
                            for n, (label, cancelled, at) in enumerate(annotations)],
            "predictions": [{"model_version": "model", "score": 0.41, "result": choice(prediction)}]}


def test_a_label_studio_export_imports_the_latest_annotation_with_the_queue_ids(project):
    ids = new_ids(4)
    tasks = [
        # relabelled: the later annotation wins, wherever it stands in the list
        label_studio_task(1, "Charged twice", ids[0], [("delivery", False, "2026-12-01T10:05:00.000000Z"),
                                                       ("billing", False, "2026-12-01T10:01:00.000000Z")]),
        # the latest annotation was cancelled (skipped in Label Studio): the one before it counts
        label_studio_task(2, "Parcel lost", ids[1], [("delivery", False, "2026-12-01T10:02:00.000000Z"),
                                                     ("technical", True, "2026-12-01T10:06:00.000000Z")]),
        # never annotated: its pre-annotation is the model's guess, not a label
        label_studio_task(3, "Where is my invoice", ids[2], []),
        # cancelled only
        label_studio_task(4, "App crashes", ids[3], [("technical", True, "2026-12-01T10:03:00.000000Z")]),
    ]
    (project / "export.json").write_text(json.dumps(tasks, indent=2))
    out = mlops(project, "feedback", "import", "export.json").stdout
    assert "imported 2 labelled texts" in out and "(2 Label Studio tasks without an annotation skipped)" in out
    batch = read_batch(list_batches(project / "batches")[0])
    assert batch["id"].tolist() == ids[:2]  # data.id, not Label Studio's task id: the labels join the traffic
    assert batch["text"].tolist() == ["Charged twice", "Parcel lost"]
    assert batch["label"].tolist() == ["delivery", "delivery"]


def test_a_label_studio_json_min_export_imports_its_rows(project):
    """JSON-MIN (https://labelstud.io/guide/export.html): one flat object per annotated task, the task's data
    (text, id, ...) with the choice under the choices' name, `label`, and the annotation's details."""
    rows = [{"id": "q1", "text": "Charged twice", "prediction": "delivery", "label": "billing", "annotator": 1,
             "annotation_id": 11, "created_at": "2026-12-01T10:01:00Z", "updated_at": "2026-12-01T10:01:00Z",
             "lead_time": 2.5},
            {"id": "q2", "text": "Parcel lost", "prediction": "billing", "label": "delivery", "annotator": 1,
             "annotation_id": 12, "created_at": "2026-12-01T10:02:00Z", "updated_at": "2026-12-01T10:02:00Z",
             "lead_time": 1.5}]
    (project / "export-min.json").write_text(json.dumps(rows))
    out = mlops(project, "feedback", "import", "export-min.json").stdout
    assert "imported 2 labelled texts" in out and "skipped" not in out
    batch = read_batch(list_batches(project / "batches")[0])
    assert batch[["id", "label"]].values.tolist() == [["q1", "billing"], ["q2", "delivery"]]


@pytest.mark.parametrize(("tasks", "message"), [
    ([{"data": {"text": "a", "id": "q1"}, "annotations": []}, "oops"], "task 2 is not a JSON object"),
    ([{"data": "a", "annotations": []}], "task 1: `data` is not an object"),
    ([{"data": {"text": "a"}, "annotations": []}, {"data": {"id": "q2"}, "annotations": []}],
     "task 2: `data.text` is empty or not a string"),
    ([{"data": {"text": "a"}, "annotations": {"result": []}}], "task 1: `annotations` is not a list of objects"),
    ([{"data": {"text": "a"}, "annotations": [{"result": "billing"}]}],
     "task 1: an annotation's `result` is not a list of objects"),
    ([{"data": {"text": "a"}, "annotations": [{"result": [{"from_name": "label", "type": "choices",
                                                           "value": {"choices": ["billing", "delivery"]}}]}]}],
     "task 1: the annotation's `value.choices` is not one label"),
    ([{"data": {"text": "a"}, "annotations": []}], "none of its 1 Label Studio tasks has an annotation to import"),
])
def test_a_malformed_label_studio_export_fails_naming_the_task(project, tasks, message):
    (project / "export.json").write_text(json.dumps(tasks))
    result = mlops(project, "feedback", "import", "export.json", check=False)
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


@pytest.mark.slow  # git, dvc init, mlops and dvc push as child processes
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
