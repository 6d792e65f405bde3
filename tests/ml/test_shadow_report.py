"""The shadow's record judged against promote.require_shadow: answers, agreement, labels, live accuracy."""

from mlops.core.settings import ShadowEvidence
from mlops.ml.shadow_report import evidence_refusal


def record(answers=100, agreement=0.95, labelled=40, correct=36):
    return {"window": "w", "challengers": {"m:2": {
        "answers": answers, "agreement": agreement,
        "live": {"labelled": labelled, "challenger_correct": correct, "champion_correct": 30}}}}


def test_each_missing_piece_of_evidence_is_named_and_enough_evidence_passes():
    """Given a requirement of 50 answers, 90% agreement and 80% live accuracy on 30 labels, then a record short of
    any one of them is refused with that one named, another candidate has no record, and a full record passes."""
    required = ShadowEvidence(min_answers=50, min_agreement=0.9, min_labels=30, min_live_accuracy=0.8)
    assert evidence_refusal(required, "m:2", record()) is None
    assert "has none for m:3" in evidence_refusal(required, "m:3", record())
    assert "scored 10 answers" in evidence_refusal(required, "m:2", record(answers=10))
    assert "on 0.85 of 100" in evidence_refusal(required, "m:2", record(agreement=0.85))
    assert "20 of m:2's shadowed answers have trusted labels" in evidence_refusal(required, "m:2",
                                                                                  record(labelled=20))
    assert "live accuracy in shadow is 0.5 on 40 labels" in evidence_refusal(required, "m:2", record(correct=20))
    assert evidence_refusal(ShadowEvidence(min_answers=50), "m:2", record(agreement=0.1, correct=0)) is None
