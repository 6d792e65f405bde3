"""The labelling queue: least confident first, de-duplicated, already-labelled texts left out, capped."""

from __future__ import annotations

import json

import pandas as pd

from mlops.core.labelling_queue import QUEUE_LABEL_CONFIG, QUEUE_LABEL_STUDIO, build_queue, write_queue
from mlops.core.settings import parse_settings
from mlops.core.traffic_log import read_traffic
from mlops.serving.traffic import TrafficLog, new_ids
from tests.helpers import invoke_cli


def test_build_queue_orders_dedups_excludes_and_caps():
    window = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "text": ["Late parcel", "late parcel ", "refund", "x", "y"],
                           "prediction": ["delivery"] * 5, "confidence": [0.9, 0.3, 0.5, 0.2, 0.6]})
    queue = build_queue(window, labelled_ids={"d"}, labelled_texts={"y"}, size=2)
    assert queue["id"].tolist() == ["b", "c"] and set(queue["label"]) == {""}


def test_write_queue_csv_and_label_studio(tmp_path, repo_params, monkeypatch):
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "fb"))
    repo_params["feedback"].update({"batches_dir": str(tmp_path / "batches"), "queue_size": 3})
    settings = parse_settings(repo_params)
    frame = pd.DataFrame({"id": new_ids(4), "text": ["a b", "c d", "e f", "g h"], "prediction": ["billing"] * 4,
                          "confidence": [0.4, 0.3, 0.2, 0.9], "model_version": "text-classifier:abc"})
    path, rows = write_queue(settings, frame, tmp_path / "queue")
    assert rows == 3 and pd.read_csv(path)["text"].tolist() == ["e f", "c d", "a b"]
    tasks = json.loads((tmp_path / "queue" / QUEUE_LABEL_STUDIO).read_text())
    assert [t["data"]["text"] for t in tasks] == ["e f", "c d", "a b"] and tasks[0]["data"]["id"] == frame["id"][2]
    # each task carries the model's answer and its score as a Label Studio pre-annotation
    assert [t["predictions"][0]["score"] for t in tasks] == [0.2, 0.3, 0.4]
    assert {t["predictions"][0]["model_version"] for t in tasks} == {"text-classifier:abc"}  # the served model
    assert tasks[0]["predictions"][0]["result"] == [{"from_name": "label", "to_name": "text", "type": "choices",
                                                     "value": {"choices": ["billing"]}}]
    # and the labelling config those pre-annotations fit ships beside it
    config = (tmp_path / "queue" / QUEUE_LABEL_CONFIG).read_text()
    assert '<Choices name="label" toName="text"' in config and '<Text name="text" value="$text"/>' in config


def test_cli_queue_reads_the_traffic_log(tmp_path, repo_params):
    import yaml

    repo_params["feedback"]["batches_dir"] = str(tmp_path / "batches")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    ids = new_ids(3)
    TrafficLog(tmp_path / "traffic").append(["one", "two", "one"], [
        {"id": i, "label": "billing", "score": s, "model_version": "m:1"} for i, s in zip(ids, [0.5, 0.7, 0.2],
                                                                                         strict=True)], 1.0)
    assert len(read_traffic(tmp_path / "traffic", 10)) == 3
    out = invoke_cli(["feedback", "queue", "--current", str(tmp_path / "traffic")], cwd=tmp_path,
                     env={"MLOPS_FEEDBACK_DIR": str(tmp_path / "fb")}).stdout
    assert "2 texts queued for labelling at reports/labelling/queue.csv" in out
    assert pd.read_csv(tmp_path / "reports/labelling/queue.csv")["id"].tolist() == [ids[2], ids[1]]
