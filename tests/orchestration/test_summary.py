"""What `make run` prints at the end, from the files the lifecycle wrote in the project folder."""

import json

import pytest

from mlops.orchestration import summary


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder, made the working directory (the summary reads paths relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def put(project, path, data):
    file = project / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(data))


def put_decision(project, data):
    """A gate decision: the fields a test sets, with the basis every decision names."""
    put(project, "reports/gate/decision.json", {"basis": "first run: no champion yet, absolute thresholds alone",
                                                **data})


def lines(capsys):
    return capsys.readouterr().out.splitlines()


def finished_lifecycle(project):
    put(project, "metrics/evaluate.json", {"accuracy": 0.9132, "macro_f1": 0.9021, "rows": 600})
    put_decision(project, {"accepted": True, "reasons": ["accuracy 0.91 >= 0.8",
                                                                              "macro-F1 0.90 >= 0.75"]})
    put(project, "reports/package.json", {"status": "candidate", "model": "text-classifier:m1",
                                         "bento": "text-classifier:abc123"})
    put(project, "reports/monitoring/summary.json", {"status": "no_drift", "current": "data/test.parquet"})
    put(project, "reports/promotion.json", {"promoted": True, "reason": "every infra-validation check passed"})


def test_summary_of_a_finished_lifecycle(project, capsys):
    finished_lifecycle(project)
    summary.main()
    out = lines(capsys)
    assert out[:2] == ["", "Lifecycle finished."]
    assert out[2].startswith("  test metrics    accuracy 0.9132, macro-F1 0.9021  (metrics/evaluate.json")
    assert out[3].startswith("  gate            accepted: accuracy 0.91 >= 0.8; macro-F1 0.90 >= 0.75  (")
    assert out[4] == "  package         candidate: bento text-classifier:abc123"
    assert out[5] == ("  promotion       promoted: every infra-validation check passed  "
                      "(reports/promotion.json; make serve)")
    assert out[6].startswith("  monitoring      no drift: data/test.parquet  (reports/monitoring/report.html")
    assert out[7] == "  validation      reports/validation/report.html"


def test_package_line_names_the_serving_variant_and_the_refused_ones(project, capsys):
    finished_lifecycle(project)
    put(project, "metrics/evaluate_detail.json", {"variants": {"fp32": {"speedup": 1.0},
                                                               "onnx_int8": {"speedup": 3.9}}})
    put_decision(project, {"accepted": True, "reasons": ["all checks passed"],
                                                "serve_variant": "onnx_fp32", "variants": {"variants": {
                                                    "fp32": {"accepted": True}, "onnx_int8": {"accepted": False}}}})
    summary.main()
    assert lines(capsys)[4] == ("  package         candidate: bento text-classifier:abc123, serves onnx_fp32; "
                                "refused: onnx_int8")


def test_every_variant_a_student_included_is_listed_under_the_package_line(project, capsys):
    # given a decision that judged the candidate's variants and a distilled student's
    finished_lifecycle(project)
    put_decision(project, {"accepted": True, "reasons": ["all checks passed"],
                                                "serve_variant": "student_fp32", "variants": {"variants": {
                                                    "fp32": {"accepted": True, "size_mb": 87.0, "texts_per_s": 100.0,
                                                             "accuracy": 0.9, "accuracy_drop_points": 0.0},
                                                    "student_fp32": {"accepted": True, "size_mb": 50.0,
                                                                     "texts_per_s": 190.0, "accuracy": 0.893,
                                                                     "accuracy_drop_points": 0.7},
                                                    "student_onnx_int8": {"accepted": False, "size_mb": 12.0,
                                                                          "texts_per_s": 800.0, "accuracy": 0.87,
                                                                          "accuracy_drop_points": 3.0}}}})
    # when the summary prints
    summary.main()
    out = lines(capsys)
    # then each variant has a line with its size, speed, accuracy, drop and verdict
    assert out[5:8] == [
        "    fp32                  87.0 MB, 100.0 texts/s, accuracy 0.9, drop 0.0 points: accepted",
        "    student_fp32          50.0 MB, 190.0 texts/s, accuracy 0.893, drop 0.7 points: serves",
        "    student_onnx_int8     12.0 MB, 800.0 texts/s, accuracy 0.87, drop 3.0 points: REFUSED"]
    assert out[8].startswith("  promotion")


def test_rejected_candidate_says_why(project, capsys):
    finished_lifecycle(project)
    put_decision(project, {"accepted": False, "reasons": ["accuracy 0.41 < 0.8"]})
    put(project, "reports/package.json", {"status": "rejected", "reasons": ["accuracy 0.41 < 0.8"]})
    put(project, "reports/monitoring/summary.json", {"status": "insufficient_data", "current": "logs/traffic"})
    summary.main()
    out = lines(capsys)
    assert out[3].startswith("  gate            rejected: accuracy 0.41 < 0.8  (")
    assert out[4] == "  package         rejected: bento -"
    assert out[6].startswith("  monitoring      insufficient data: logs/traffic  (")


def test_missing_files_print_placeholders_not_a_traceback(project, capsys):
    summary.main()
    out = lines(capsys)
    assert out[2].startswith("  test metrics    accuracy None, macro-F1 None  (")
    assert out[3].startswith("  gate            not run:   (")  # no decision is not a rejection
    assert out[4] == "  package         None: bento -"
    assert out[5].startswith("  promotion       not promoted: -  (")
    assert out[6].startswith("  monitoring      ?: None  (")


def test_read_of_a_missing_file_is_empty(project):
    put(project, "a.json", {"k": 1})
    assert summary.read("a.json") == {"k": 1}
    assert summary.read("missing.json") == {}


def test_the_verdict_comes_last_and_a_rejection_says_its_exit_status_and_next_step(project, capsys):
    finished_lifecycle(project)
    put(project, "reports/promotion.json", {"promoted": True, "champion": "text-classifier:m1",
                                            "reason": "every infra-validation check passed"})
    summary.main()
    assert lines(capsys)[-2:] == ["", "Verdict: PROMOTED text-classifier:m1."]
    step = "label about 412 more texts (the queue has 500: reports/labelling/queue.csv)"
    note = "a gain of 0.013 would be significant at 95% with about 371 recent rows (200 now)"
    put_decision(project, {
        "accepted": False, "reasons": ["better_than_champion_on_recent: observed -0.0047 vs 0.0"], "next_step": step,
        "comparison": {"judged_on": "recent", "evidence": {"note": "on the test split"},
                       "recent": {"evidence": {"note": note}}}})
    put(project, "reports/promotion.json", {"promoted": False, "rejected": True, "reason": "the gate rejected"})
    summary.main()
    out = lines(capsys)
    assert out[4] == f"  evidence        {note}"
    assert out[-3:] == ["", "Verdict: REJECTED by the gate, nothing promoted; the champion keeps serving (an "
                            "outcome, not a failure: mlops promote and retrain-on-drift exit 3, make run 0).",
                        f"Next step: {step}"]
