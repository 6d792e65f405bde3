"""The records other code reads: the evaluation metrics split in a headline and a detail file, read back whole;
the gate decision, the package result and the promotion record as typed models."""

import json
import re

import pytest

from mlops.core import records
from mlops.core.errors import MlopsError
from mlops.core.records import GateDecision, PackageResult, PromotionRecord

FULL = {
    "rows": 90, "accuracy": 0.8, "macro_f1": 0.79, "ece": 0.05, "size_mb": 17.5,
    "latency": {"p50_ms": 9.1, "p95_ms": 12.3, "samples": 20},
    "per_class": {"a": {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 45},
                  "b": {"precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 45}},
    "labels": ["a", "b"], "confusion_matrix": [[31, 14], [4, 41]],
    "slices": {"chars 0-49": {"rows": 90, "accuracy": 0.8, "macro_f1": 0.79}},
    "behaviour": {"pass_rate": 1.0, "cases": 3, "failures": []},
    "variants": {"fp32": {"accuracy": 0.8, "accuracy_drop_points": 0.0, "texts_per_s": 100.0},
                 "onnx_int8": {"accuracy": 0.79, "accuracy_drop_points": 1.0, "texts_per_s": 400.0}},
}



def test_headline_holds_only_the_summary_figures_and_detail_the_rest(tmp_path):
    path = tmp_path / "metrics" / "evaluate.json"
    records.write_metrics(FULL, path)
    headline = json.loads(path.read_text())
    assert set(headline) == {"rows", "accuracy", "macro_f1", "ece", "size_mb", "latency"}
    detail = json.loads((tmp_path / "metrics" / "evaluate_detail.json").read_text())
    assert {"per_class", "slices", "confusion_matrix", "behaviour", "variants", "labels"} == set(detail)
    assert records.read_metrics(path) == FULL  # the gate and the model card read the whole document back


def test_read_metrics_without_detail_file_is_the_headline(tmp_path):
    path = tmp_path / "evaluate.json"
    path.write_text(json.dumps({"accuracy": 0.5}))
    assert records.read_metrics(path) == {"accuracy": 0.5}


def test_missing_metrics_are_an_error_unless_a_report_asks_for_whatever_exists(tmp_path):
    with pytest.raises(MlopsError, match="missing input"):
        records.read_metrics(tmp_path / "evaluate.json")
    assert records.read_metrics(tmp_path / "evaluate.json", missing_ok=True) == {}


def test_a_decision_reads_back_as_it_was_written_and_a_reader_gets_fields(tmp_path):
    # given a gate decision with the fields a first run sets
    decision = GateDecision(accepted=False, basis="first run: no champion yet, absolute thresholds alone",
                            reasons=["min_accuracy: the candidate's accuracy on the 600 test rows: 0.41, needs >= 0.8"],
                            checks=[{"check": "min_accuracy", "observed": 0.41, "threshold": 0.8,
                                     "rule": "accuracy >= threshold", "passed": False}],
                            candidate_digest="abc", comparison=None)
    # when it is written and read again
    decision.write(tmp_path / "decision.json")
    again = GateDecision.read(tmp_path / "decision.json")
    # then it is the same record, its file holds only the fields the writer set, and defaults fill the rest
    assert again == decision and again.checks[0].passed is False and again.serve_variant == "fp32"
    assert set(json.loads((tmp_path / "decision.json").read_text())) == {
        "accepted", "basis", "reasons", "checks", "candidate_digest", "comparison"}


@pytest.mark.parametrize(("record", "content", "problem"), [
    (GateDecision, {"accepted": True, "reasons": []}, "basis: Field required"),
    (GateDecision, {"accepted": True, "basis": "b", "reasons": [], "acepted": True}, "acepted: Extra inputs"),
    (PackageResult, {"status": "promoted"}, "status: Input should be 'rejected', 'unchanged' or 'candidate'"),
    (PromotionRecord, {"promoted": "maybe", "reason": "r"}, "promoted: Input should be a valid boolean"),
])
def test_a_foreign_or_hand_edited_record_is_refused_naming_the_file_and_the_field(tmp_path, record, content,
                                                                                  problem):
    path = tmp_path / "record.json"
    path.write_text(json.dumps(content))
    with pytest.raises(MlopsError, match=rf"record.json: not a {record.__name__} record: .*{re.escape(problem)}"):
        record.read(path)


def test_a_record_not_written_yet_reads_as_none_and_a_package_result_gives_its_registry_entry(tmp_path):
    assert PackageResult.read_if_present(tmp_path / "package.json") is None
    result = PackageResult(status="candidate", model="m:1", bento="b:1", digest="d", serve_variant="onnx_int8",
                           rebuilt=False, reused=False)
    # the entry keeps what says which model serves how; not what package did to build it
    assert result.entry() == {"model": "m:1", "bento": "b:1", "digest": "d", "serve_variant": "onnx_int8"}
