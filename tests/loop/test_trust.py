"""Only trusted labels become data: a client's labels stay suggestions, a labeller's poisoned batch is held, an
honest one is collected, and a held or rejected batch blocks nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from mlops.core.batch_files import list_batches, read_batches
from mlops.core.feedback_log import FEEDBACK_FILE, SUGGESTIONS_FILE, read_feedback
from mlops.core.labelling_queue import QUEUE_LABEL_STUDIO, escape_cell, unescape_cell
from mlops.core.settings import load_settings
from mlops.loop.batches import collect_served
from mlops.loop.retrain import prepare
from mlops.serving.credentials import Identity
from mlops.serving.feedback import record_feedback
from mlops.serving.traffic import TrafficLog, new_ids
from tests.helpers import invoke_cli

LABELS = ["billing", "delivery", "technical", "account", "feedback"]
CLIENT, LABELLER = Identity("shop-frontend", "client"), Identity("alice", "labeller")


@pytest.fixture
def project(tmp_path, repo_params, monkeypatch):
    repo_params["validate"]["labels"] = LABELS
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params))
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "logs" / "feedback"))
    monkeypatch.setenv("MLOPS_TRAFFIC_DIR", str(tmp_path / "logs" / "traffic"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / ".bentoml"))  # no champion: the limit is the floor
    monkeypatch.chdir(tmp_path)
    return tmp_path


def serve(project, count: int, start: int = 0) -> list[tuple[str, str]]:
    """`count` texts answered confidently and rightly, as the service logs them; (id, the answer's label)."""
    ids, labels = new_ids(count), [LABELS[(start + i) % len(LABELS)] for i in range(count)]
    TrafficLog(project / "logs" / "traffic").append(
        [f"message {start + i} about {label}" for i, label in enumerate(labels)],
        [{"id": i, "label": label, "score": 0.97, "model_version": "text-classifier:v1"}
         for i, label in zip(ids, labels, strict=True)], 2.0)
    return list(zip(ids, labels, strict=True))


def flipped(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % len(LABELS)]


def post(pairs, identity):
    body = json.dumps([{"id": i, "label": label} for i, label in pairs]).encode()
    return record_feedback(body, LABELS, 256, identity=identity)


def mlops(project, *args, check=True):
    """The command in this process (what it writes and how it exits is what these tests read)."""
    return invoke_cli(list(args), cwd=project, check=check, env={
        "MLOPS_FEEDBACK_DIR": str(project / "logs" / "feedback"),
        "MLOPS_TRAFFIC_DIR": str(project / "logs" / "traffic"), "MLOPS_OPERATOR": "ops-on-call"})


def test_a_client_cannot_get_its_labels_into_the_data(project):
    """Given 100 labels from a client key that contradict what was served, when the loop collects and a
    drift-triggered run prepares, then no batch exists, no retrain starts and the labels wait in the queue as
    suggestions."""
    answers = post([(i, flipped(label)) for i, label in serve(project, 100)], CLIENT)
    assert {a["status"] for a in answers} == {"suggested"}
    assert not (project / "logs" / "feedback" / FEEDBACK_FILE).exists()
    suggestions = read_feedback(project / "logs" / "feedback" / SUGGESTIONS_FILE)
    assert len(suggestions) == 100 and {(r["source"], r["role"]) for r in suggestions} == {("shop-frontend",
                                                                                            "client")}
    assert all(r["model_version"] == "text-classifier:v1" and r["labelled_at"] for r in suggestions)

    out = mlops(project, "feedback", "collect").stdout
    assert "0 new labels" in out and "no new batch" in out
    assert list_batches(project / "data" / "feedback") == []
    assert prepare(project)["status"] == "no_new_labels"

    out = mlops(project, "feedback", "queue").stdout
    assert "100 texts queued" in out
    queue = pd.read_csv(project / "reports" / "labelling" / "queue.csv", dtype=str, keep_default_na=False)
    assert len(queue) == 100 and (queue["suggested_label"] != queue["prediction"]).all()
    task = json.loads((project / "reports" / "labelling" / QUEUE_LABEL_STUDIO).read_text())[0]
    assert task["predictions"][0]["result"][0]["value"]["choices"] == [task["data"]["suggested_label"]]
    assert "<Choice value=\"billing\"/>" in (project / "reports" / "labelling" / "queue.labelstudio.xml").read_text()


@pytest.mark.slow  # eleven CLI runs: the whole review path as an operator types it
def test_a_labellers_poisoned_batch_is_held_and_an_honest_one_is_collected(project):
    """Given 100 labeller labels that flip confident answers, then they are held and listed; 120 agreeing ones
    posted next are collected; neither the held batch nor its rejection blocks that."""
    post([(i, flipped(label)) for i, label in serve(project, 100)], LABELLER)
    outcome = collect_served(load_settings("params.yaml"), project / "logs" / "feedback" / FEEDBACK_FILE)
    assert outcome.batch is None and outcome.held is not None and outcome.rows == 100
    assert list_batches(project / "data" / "feedback") == []
    listing = mlops(project, "feedback", "held").stdout
    assert outcome.held.stem in listing and "contradict 100 of the model's 100 confident answers" in listing
    assert "source alice: 100 rows (100%), agreement with the model 0.0" in listing

    post(serve(project, 120, start=100), LABELLER)
    out = mlops(project, "feedback", "collect").stdout
    assert "120 new labels" in out and "HELD" not in out  # the held ids are not collected again
    assert len(read_batches(project / "data" / "feedback")) == 120

    out = mlops(project, "feedback", "reject", outcome.held.stem, "--note", "flips").stdout
    assert "rejected" in out
    assert "no batch is held" in mlops(project, "feedback", "held").stdout
    assert "rejected" in mlops(project, "feedback", "held", "--all").stdout
    record = json.loads(outcome.held.with_suffix(".json").read_text())
    assert (record["status"], record["decided_by"], record["note"]) == ("rejected", "ops-on-call", "flips")
    assert "0 new labels" in mlops(project, "feedback", "collect").stdout
    again = mlops(project, "feedback", "approve", outcome.held.stem, check=False)
    assert again.returncode == 2 and "already rejected" in again.stderr

    sources = mlops(project, "feedback", "sources").stdout
    assert "alice" in sources and "220" in sources and "labeller" in sources


def test_an_approved_batch_becomes_data(project):
    post([(i, flipped(label)) for i, label in serve(project, 40)], LABELLER)
    held = collect_served(load_settings("params.yaml"), project / "logs" / "feedback" / FEEDBACK_FILE).held
    out = mlops(project, "feedback", "approve", held.name).stdout
    assert "approved" in out and [p.name for p in list_batches(project / "data" / "feedback")] == [held.name]
    missing = mlops(project, "feedback", "approve", "../../etc/passwd", check=False)
    assert missing.returncode == 2 and "not a batch name" in missing.stderr


def test_an_operator_import_of_flipped_labels_is_held_against_the_champions_answers(project, monkeypatch):
    """An import is screened against the champion's own answers (here stood in for by fixed answers)."""
    from mlops.loop import batches

    monkeypatch.setattr(batches, "champion_answers", lambda settings, texts: pd.DataFrame(
        {"prediction": ["billing"] * len(texts), "confidence": [0.99] * len(texts)}))
    monkeypatch.setattr(batches, "champion_yardstick", lambda settings: batches.Yardstick(0.9, 0.05, "stand-in"))
    (project / "labels.csv").write_text("text,label\n" + "".join(f"invoice {i} wrong,delivery\n" for i in range(50)))
    outcome = batches.import_file(load_settings("params.yaml"), project / "labels.csv")
    assert outcome.held is not None and outcome.batch is None
    (project / "ok.csv").write_text("text,label\n" + "".join(f"invoice {i},billing\n" for i in range(50)))
    assert batches.import_file(load_settings("params.yaml"), project / "ok.csv").batch is not None


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-5% today", "@SUM(A1)", "\tx", "'=x",
                                  "plain", "it's", "'quoted'"])
def test_queue_cells_are_escaped_against_formulas_and_read_back_exactly(text):
    escaped = escape_cell(text)
    assert not str(escaped).startswith(("=", "+", "-", "@", "\t", "\r"))
    assert unescape_cell(escaped) == text


def test_a_filled_in_queue_imports_its_texts_unescaped(project):
    frame = pd.DataFrame({"id": ["a"], "text": [escape_cell("=cmd|' /C calc'!A0")], "prediction": ["billing"],
                          "confidence": ["0.5"], "suggested_label": [""], "label": ["technical"]})
    frame.to_csv(project / "queue.csv", index=False)
    mlops(project, "feedback", "import", "queue.csv")
    assert read_batches(project / "data" / "feedback")["text"].tolist() == ["=cmd|' /C calc'!A0"]


def test_keys_add_stores_a_digest_and_the_key_works(project, repo_params):
    from mlops.serving.credentials import Credentials

    out = mlops(project, "keys", "add", "alice", "--role", "labeller", "--file", "keys.yaml")
    key = out.stdout.strip()
    assert len(key) >= 40 and key not in (project / "keys.yaml").read_text()
    assert (project / "keys.yaml").stat().st_mode & 0o077 == 0
    credentials = Credentials.from_environment(load_settings("params.yaml").serve,
                                               {"MLOPS_KEYS_FILE": str(project / "keys.yaml")})
    assert credentials.identify(key) == Identity("alice", "labeller") and credentials.identify(key + "x") is None
    again = mlops(project, "keys", "add", "alice", "--role", "client", "--file", "keys.yaml", check=False)
    assert again.returncode == 2 and "has a key already" in again.stderr


def test_keys_check_refuses_to_bind_beyond_loopback_without_keys(project):
    refused = mlops(project, "keys", "check", "--host", "0.0.0.0", check=False)
    assert refused.returncode == 2 and "MLOPS_API_KEY" in refused.stderr and "MLOPS_LABEL_KEY" in refused.stderr
    assert mlops(project, "keys", "check", "--host", "127.0.0.1").returncode == 0
