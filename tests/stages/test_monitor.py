"""Monitoring: signals, verdicts, the traffic log it reads, and its history."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import TrafficSettings
from mlops.core.traffic_log import list_parts, read_traffic
from mlops.ml.model import Classifier, decode_embedding
from mlops.ml.monitor_history import read_history
from mlops.ml.scoring import score
from mlops.serving.traffic import TrafficLog
from mlops.stages import monitor
from mlops.stages.generate import generate_corpus


@pytest.fixture(scope="module")
def classifier(trained):
    return Classifier.load(trained[1] / "model")


@pytest.fixture(scope="module")
def reference(trained, classifier):
    return score(classifier, generate_corpus(400, trained[0].data.generated.classes, seed=1))


def signals(frame):
    return monitor.signal_frame(frame, "test", None)


def test_same_distribution_does_not_drift(trained, classifier, reference):
    current = score(classifier, generate_corpus(400, trained[0].data.generated.classes, seed=2))
    verdict, _ = monitor.compare(signals(reference), signals(current), trained[0].monitor)
    assert verdict["status"] == "no_drift", verdict
    assert set(verdict["signals"]) == set(monitor.SIGNALS)


def test_other_text_drifts_on_text_and_embeddings(trained, classifier, reference):
    other = pd.DataFrame({"text": [f"GOAL!!! {i}-{i + 2} at 90+{i % 7}' :: {'#' * (i % 5)} http://x.io/{i}"
                                   for i in range(300)]})
    verdict, _ = monitor.compare(signals(reference), signals(score(classifier, other)), trained[0].monitor)
    drifted = {name for name, s in verdict["signals"].items() if s["drifted"]}
    assert verdict["drift"] and {"non_letter_share", "embedding"} <= drifted, verdict


def test_label_mix_shift_drifts(trained, classifier, reference):
    corpus = generate_corpus(1200, trained[0].data.generated.classes, seed=3)
    first = trained[0].data.generated.classes[0]
    skewed = pd.concat([corpus[corpus["label"] == first], corpus[corpus["label"] != first].head(40)])
    verdict, _ = monitor.compare(signals(reference), signals(score(classifier, skewed)), trained[0].monitor)
    drifted = {name for name, s in verdict["signals"].items() if s["drifted"]}
    assert verdict["drift"] and "prediction" in drifted, verdict


@pytest.mark.parametrize("window", ["clean", "drifted"])
def test_evidently_report_states_the_verdict_of_summary_json(trained, classifier, reference, window):
    from mlops.ml.verdict_report import read_verdict

    if window == "clean":
        current = score(classifier, generate_corpus(400, trained[0].data.generated.classes, seed=2))
    else:
        current = score(classifier, pd.DataFrame({"text": [f"GOAL!!! {i}-{i + 2} :: {'#' * (i % 5)} http://x.io/{i}"
                                                            for i in range(300)]}))
    verdict, snapshot = monitor.compare(signals(reference), signals(current), trained[0].monitor)
    assert verdict["status"] == ("no_drift" if window == "clean" else "drift")
    stated = read_verdict(json.loads(json.dumps(snapshot.dict(), default=str)))
    assert stated["status"] == verdict["status"] and stated["drifted_share"] == verdict["drifted_share"]
    assert stated["headline_test_passed"] is (not verdict["drift"])
    assert set(stated["signals"]) == set(monitor.SIGNALS) == set(verdict["signals"])  # embedding included
    for name, signal in verdict["signals"].items():
        shown = stated["signals"][name]
        assert shown["score"] == signal["score"]  # confidence: the fall of the mean, as the verdict measures it
        assert shown["threshold"] == max(signal["threshold"], signal["noise_floor"])
        assert shown["test_passed"] is (not signal["drifted"]), (name, shown, signal)


def traffic_from(frame, directory, version="text-classifier:v1", settings=None):
    from mlops.ml.model import encode_embedding

    log = TrafficLog(directory, settings)
    for row in frame.itertuples():
        log.append([row.text], [{"label": row.prediction, "score": row.confidence, "model_version": version}],
                   latency_ms=5.0, embeddings=[encode_embedding(row.embedding)])
    return log


def test_run_on_traffic_log_writes_report_and_history(tmp_path, trained, reference):
    settings = trained[0].model_copy(update={"monitor": trained[0].monitor.model_copy(
        update={"history_dir": str(tmp_path / "history"), "workspace": str(tmp_path / "workspace")})})
    reference.to_parquet(tmp_path / "reference.parquet")
    traffic_from(reference.head(150), tmp_path / "traffic")
    for out in ("one", "two"):
        summary = monitor.run(settings, monitor.MonitorIO(reference=tmp_path / "reference.parquet",
                                                          scored_test=tmp_path / "unused.parquet",
                                                          out_dir=tmp_path / out), current=str(tmp_path / "traffic"))
    assert summary["current_rows"] == 150 and summary["current"].startswith("served traffic")
    assert summary["status"] in ("drift", "no_drift") and len(summary["signals"]) == 6
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["drift"] == summary["drift"]
    assert (tmp_path / "two" / "report.html").stat().st_size > 10_000
    from mlops.ml.verdict_report import read_verdict

    saved = read_verdict(json.loads((tmp_path / "two" / "report.json").read_text()))  # the saved snapshot
    assert saved["status"] == summary["status"] and len(saved["signals"]) == 6
    assert {name: s["score"] for name, s in saved["signals"].items()} == {
        name: s["score"] for name, s in summary["signals"].items()}
    history = read_history(tmp_path / "history")
    assert len(history) == 2 and all((tmp_path / "history" / name / "report.html").is_file() for name, _ in history)
    index = (tmp_path / "history" / "index.html").read_text()
    assert index.count("/report.html") == 2 and "embedding" in index
    assert (tmp_path / "history" / "drift_over_time.png").read_bytes()[:4] == b"\x89PNG"
    snapshots = list((tmp_path / "workspace").glob("*/snapshots/*.json"))  # and one Evidently snapshot per run
    assert len(snapshots) == 2


def test_too_few_rows_give_no_verdict(tmp_path, trained, reference):
    reference.to_parquet(tmp_path / "reference.parquet")
    traffic_from(reference.head(20), tmp_path / "traffic")
    summary = monitor.run(trained[0], monitor.MonitorIO(reference=tmp_path / "reference.parquet",
                                                        scored_test=tmp_path / "unused.parquet",
                                                        out_dir=tmp_path / "out"), current=str(tmp_path / "traffic"),
                          history=False)
    assert summary["status"] == "insufficient_data" and summary["drift"] is False
    assert "No verdict" in (tmp_path / "out" / "report.html").read_text()


def test_a_plain_text_file_is_scored_by_the_model(tmp_path, trained, reference):
    reference.to_parquet(tmp_path / "reference.parquet")
    reference[["text"]].head(120).to_csv(tmp_path / "texts.csv", index=False)
    summary = monitor.run(trained[0], monitor.MonitorIO(reference=tmp_path / "reference.parquet",
                                                        scored_test=tmp_path / "unused.parquet",
                                                        out_dir=tmp_path / "out", model=trained[1] / "model"),
                          current=str(tmp_path / "texts.csv"), history=False)
    assert summary["current"] == f"data file {tmp_path / 'texts.csv'}" and summary["current_rows"] == 120
    assert summary["signals"]["embedding"]["score"] < trained[0].monitor.embedding_threshold  # same texts


def test_window_keeps_only_the_newest_model_version(tmp_path, reference):
    traffic_from(reference.head(30), tmp_path, version="m:old")
    traffic_from(reference.head(50), tmp_path, version="m:new")
    window, version, note = monitor.one_model_version(read_traffic(tmp_path, 1000))
    assert version == "m:new" and len(window) == 50 and "30 rows served by older versions" in note


def test_bad_current_inputs_are_named(tmp_path, trained, reference):
    reference.to_parquet(tmp_path / "reference.parquet")
    with pytest.raises(MlopsError, match="monitor.current: not found"):
        monitor.run(trained[0], monitor.MonitorIO(reference=tmp_path / "reference.parquet", scored_test=tmp_path / "x",
                                                  out_dir=tmp_path / "out"), current=str(tmp_path / "nope"),
                    history=False)
    reference[["label"]].head(120).to_csv(tmp_path / "no_text.csv", index=False)
    with pytest.raises(MlopsError, match="no `text` column"):
        monitor.run(trained[0], monitor.MonitorIO(reference=tmp_path / "reference.parquet", scored_test=tmp_path / "x",
                                                  out_dir=tmp_path / "out"), current=str(tmp_path / "no_text.csv"),
                    history=False)
    reference[["text"]].head(120).to_csv(tmp_path / "texts.csv", index=False)
    with pytest.raises(MlopsError, match="no model at"):
        monitor.run(trained[0], monitor.MonitorIO(reference=tmp_path / "reference.parquet", scored_test=tmp_path / "x",
                                                  out_dir=tmp_path / "out", model=tmp_path / "missing"),
                    current=str(tmp_path / "texts.csv"), history=False)


# --- the traffic log ---------------------------------------------------------------------------------------

def answer(label="a"):
    return {"label": label, "score": 0.9, "model_version": "m"}


def test_traffic_window_is_the_newest_rows(tmp_path):
    log = TrafficLog(tmp_path)
    for index in range(30):
        log.append([f"text {index}"], [answer()], latency_ms=1)
    window = read_traffic(tmp_path, window_rows=10)
    assert window["text"].tolist() == [f"text {i}" for i in range(20, 30)]


def test_traffic_window_by_hours(tmp_path):
    TrafficLog(tmp_path).append(["now"], [answer()], latency_ms=1)
    old = {"timestamp": "2020-01-01T00:00:00+00:00", "text": "old", "prediction": "a", "confidence": 0.9,
           "model_version": "m", "latency_ms": 1}
    (tmp_path / "traffic-20200101-0000.jsonl").write_text(json.dumps(old) + "\n")
    assert read_traffic(tmp_path, 100)["text"].tolist() == ["old", "now"]
    assert read_traffic(tmp_path, 100, window_hours=1)["text"].tolist() == ["now"]


def test_monitor_reads_a_traffic_log_with_a_torn_line_and_says_so(tmp_path, repo_params):
    """A worker killed mid-append must not stop monitoring until its part rotates out."""
    from mlops.core.settings import parse_settings

    log = TrafficLog(tmp_path)
    log.append(["first", "second"], [answer(), answer()], latency_ms=1)
    with open(list_parts(tmp_path)[-1], "a") as part:
        part.write('{"timestamp": "2026-11-30T10:00:00+00:00", "text": "cut sh')
    window, described = monitor.load_current(str(tmp_path), tmp_path / "unused.parquet",
                                             parse_settings(repo_params).monitor)
    assert window["text"].tolist() == ["first", "second"]
    assert described.endswith("; 1 torn lines skipped")


def test_traffic_log_rotates_and_keeps_the_newest_parts(tmp_path):
    log = TrafficLog(tmp_path, TrafficSettings(max_file_mb=0.001, keep_files=3))  # ~1 KB parts
    for index in range(40):
        log.append([f"text number {index} " * 3], [answer()], latency_ms=1)
    parts = list_parts(tmp_path)
    assert len(parts) == 3 and all(p.stat().st_size < 2048 for p in parts)
    assert read_traffic(tmp_path, 1)["text"].iloc[0].startswith("text number 39")
    again = TrafficLog(tmp_path, TrafficSettings(max_file_mb=0.001, keep_files=3))  # a restart continues the part
    again.append(["after restart"], [answer()], latency_ms=1)
    assert list_parts(tmp_path)[-1] == parts[-1]


def test_hashed_traffic_keeps_no_text_and_still_monitors(tmp_path, monkeypatch, trained, reference):
    settings = TrafficSettings(hash_texts=True, salt_env="TEST_SALT")
    monkeypatch.delenv("TEST_SALT", raising=False)
    with pytest.raises(MlopsError, match=r"\$TEST_SALT is not set"):
        TrafficLog(tmp_path, settings)
    monkeypatch.setenv("TEST_SALT", "s3cret")
    traffic_from(reference.head(120), tmp_path / "traffic", settings=settings)
    raw = "".join(p.read_text() for p in list_parts(tmp_path / "traffic"))
    assert reference["text"].iloc[0] not in raw and '"text"' not in raw and "text_hmac" in raw
    first = json.loads(raw.splitlines()[0])
    assert len(first["text_hmac"]) == 64 and first["text_length"] == len(reference["text"].iloc[0])
    np.testing.assert_allclose(decode_embedding(first["embedding"]), reference["embedding"].iloc[0], atol=2e-3)
    reference.to_parquet(tmp_path / "reference.parquet")
    summary = monitor.run(trained[0], monitor.MonitorIO(reference=tmp_path / "reference.parquet",
                                                        scored_test=tmp_path / "unused.parquet",
                                                        out_dir=tmp_path / "out"), current=str(tmp_path / "traffic"),
                          history=False)
    assert summary["status"] == "no_drift", summary  # the same rows, through hashes and descriptors
    assert os.environ["TEST_SALT"] not in raw


LIVE_LABELS = ["billing", "delivery", "technical", "account", "feedback"]


@pytest.fixture
def live_project(tmp_path, repo_params, monkeypatch):
    """A project whose service answered: its traffic log, feedback folder and a private BentoML home."""
    from mlops.core.settings import parse_settings

    repo_params["validate"]["labels"] = LIVE_LABELS
    monkeypatch.setenv("MLOPS_FEEDBACK_DIR", str(tmp_path / "logs" / "feedback"))
    monkeypatch.setenv("MLOPS_TRAFFIC_DIR", str(tmp_path / "logs" / "traffic"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / ".bentoml"))  # no registered version: the given reference
    monkeypatch.chdir(tmp_path)
    return tmp_path, parse_settings(repo_params)


def served_texts(count, seed):
    labels = [LIVE_LABELS[i % len(LIVE_LABELS)] for i in range(count)]
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"text": [f"my {label} question number {i}, please help." + " Thanks!" * (i % 3)
                                  for i, label in enumerate(labels)],
                         "prediction": labels, "confidence": rng.uniform(0.8, 1.0, count),
                         "embedding": list(rng.normal(size=(count, 8)).astype(np.float32))})


def serve_and_label(project, count, right):
    """`count` answers served with their predictions and embeddings (as the service logs them), then a labeller's
    labels (`right` of them agreeing) and a client's suggestions agreeing with every answer."""
    import json as json_

    from mlops.serving.credentials import Identity
    from mlops.serving.feedback import record_feedback
    from mlops.serving.traffic import new_ids

    frame, ids = served_texts(count, seed=2), new_ids(count)
    TrafficLog(project / "logs" / "traffic").append(
        frame["text"].tolist(), [{"id": i, "label": row.prediction, "score": row.confidence,
                                  "model_version": "text-classifier:v1"} for i, row in zip(ids, frame.itertuples(),
                                                                                            strict=True)],
        2.0, embeddings=frame["embedding"].tolist())
    wrong = {label: LIVE_LABELS[(LIVE_LABELS.index(label) + 1) % len(LIVE_LABELS)] for label in LIVE_LABELS}
    labels = [p if n < right else wrong[p] for n, p in enumerate(frame["prediction"])]
    for identity, given in ((Identity("alice", "labeller"), labels),
                            (Identity("shop-frontend", "client"), frame["prediction"].tolist())):
        body = json_.dumps([{"id": i, "label": label} for i, label in zip(ids, given, strict=True)]).encode()
        record_feedback(body, LIVE_LABELS, 256, identity=identity)


@pytest.mark.slow  # Evidently reports on a served log
def test_monitor_reports_live_quality_and_its_breach(live_project, capsys):
    """Given 200 served answers, 100 labelled right and 100 wrong by a labeller, and a client's suggestions that
    all are right, when `mlops monitor` runs on the traffic, then summary.json's live quality shows accuracy 0.5
    for the serving version with its interval and a breach of gate.min_accuracy; the report and the history
    show it."""
    from mlops.core.stats import wilson_interval

    project, settings = live_project
    served_texts(300, seed=1).to_parquet(project / "reference.parquet")
    serve_and_label(project, 200, right=100)

    monitor.run(settings, monitor.MonitorIO(reference=project / "reference.parquet",
                                            scored_test=project / "unused.parquet", out_dir=project / "out"),
                current=str(project / "logs" / "traffic"))

    summary = json.loads((project / "out" / "summary.json").read_text())
    assert summary["status"] in ("drift", "no_drift") and summary["model_version"] == "text-classifier:v1"
    window = summary["live_quality"]["text-classifier:v1"]["window"]
    low, high = wilson_interval(100, 200)
    assert window["accuracy"] == 0.5 and window["labelled"] == 200
    assert window["accuracy_ci"] == [round(low, 4), round(high, 4)]
    assert summary["live_labels"]["suggestions_ignored"] == 200 and summary["live_labels"]["trusted"] == 200
    breach = summary["live_quality_breach"]
    assert breach["model_version"] == "text-classifier:v1" and breach["accuracy_ci"][1] < settings.gate.min_accuracy
    assert "LIVE QUALITY BREACH" in capsys.readouterr().out
    report = (project / "out" / "report.html").read_text()
    assert report.index("<body") < report.index('<section id="live-quality"') and "LIVE QUALITY BREACH" in report
    index = (project / settings.monitor.history_dir / "index.html").read_text()
    assert "&#9660; text-classifier:v1: 0.500" in index
    assert (project / settings.monitor.history_dir / "live_accuracy_over_time.png").is_file()


def test_monitor_without_enough_labels_says_how_many_it_needs(live_project, capsys):
    project, settings = live_project
    serve_and_label(project, 20, right=0)  # fewer rows than min_rows too: no drift verdict either

    summary = monitor.run(settings, monitor.MonitorIO(reference=project / "reference.parquet",
                                                      scored_test=project / "unused.parquet", out_dir=project / "out"),
                          current=str(project / "logs" / "traffic"), history=False)

    assert summary["status"] == "insufficient_data" and "live_quality_breach" not in summary
    window = summary["live_quality"]["text-classifier:v1"]["window"]
    assert (window["status"], window["labelled"], window["needed"]) == ("insufficient_labels", 20, 10)
    assert "text-classifier:v1 (serving): 20 labels, 30 needed (10 more): no verdict" in capsys.readouterr().out
    assert "20 labels, 30 needed (10 more)" in (project / "out" / "report.html").read_text()
    assert not (project / settings.monitor.workspace).exists()  # history=False: no snapshot either


def test_monitor_reports_the_shadows_agreement_and_live_accuracy_beside_the_champions(live_project, capsys):
    """Given 40 served answers, half labelled right, and a challenger that shadowed them all, agreeing with the
    champion where it was right and giving the labeller's label where it was wrong, when `mlops monitor` runs,
    then summary.json's `shadow` shows agreement 0.5 and, on the same 40 labels, the challenger's accuracy 1.0
    beside the champion's 0.5; the report and the console say so; live quality counts served answers only."""
    from mlops.core.feedback_log import FEEDBACK_FILE, read_feedback
    from mlops.serving.shadow_log import ShadowLog

    project, settings = live_project
    serve_and_label(project, 40, right=20)
    traffic = project / "logs" / "traffic"
    labels = {r["id"]: r["label"] for r in read_feedback(project / "logs" / "feedback" / FEEDBACK_FILE)
              if r["role"] == "labeller"}
    served = read_traffic(traffic, 1000)
    records = [{"shadow_of": row.id, "prediction": labels[row.id], "confidence": 0.7,
                "model_version": "text-classifier:v2", "champion_prediction": row.prediction,
                "champion_version": "text-classifier:v1"} for row in served.itertuples()]
    ShadowLog(traffic).write(ShadowLog(traffic).lines([""] * 40, records, 4.0))

    summary = monitor.run(settings, monitor.MonitorIO(reference=project / "reference.parquet",
                                                      scored_test=project / "unused.parquet", out_dir=project / "out"),
                          current=str(traffic), history=False)

    shadow = summary["shadow"]["challengers"]["text-classifier:v2"]
    assert (shadow["answers"], shadow["agreement"], shadow["champion_versions"]) == (40, 0.5, ["text-classifier:v1"])
    live = shadow["live"]
    assert (live["labelled"], live["challenger"]["accuracy"], live["champion"]["accuracy"]) == (40, 1.0, 0.5)
    assert list(summary["live_quality"]) == ["text-classifier:v1"]  # shadow answers are not served answers
    assert summary["live_quality"]["text-classifier:v1"]["window"]["labelled"] == 40
    assert ("text-classifier:v2: agrees with the champion on 50.0% (95% CI 0.352-0.648) of 40 answers; live "
            "accuracy 1.0 vs the champion's 0.5 on 40 labels") in capsys.readouterr().out
    report = (project / "out" / "report.html").read_text()
    assert '<section id="shadow"' in report and "0.500 [0.352, 0.648]" in report
