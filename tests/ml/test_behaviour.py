"""The behavioural suite: loading names what is wrong; running it on a fake model counts passes and failures."""

import numpy as np
import pytest

from mlops.core.errors import MlopsError
from mlops.ml.behaviour import Invariance, Suite, load_suite, run_suite
from tests.helpers import ROOT

LABELS = ["billing", "delivery"]
KEYWORDS = {"billing": ("charged", "refund"), "delivery": ("parcel", "arrived")}


class KeywordModel:
    """A stand-in classifier: P(label) grows with that label's keywords in the text; ties go to the first label."""

    def __init__(self):
        self.calls = []

    def predict_proba(self, texts):
        self.calls.append(list(texts))
        counts = np.array([[sum(text.count(word) for word in KEYWORDS[label]) for label in LABELS]
                           for text in texts], dtype=float)
        exp = np.exp(counts)
        return exp / exp.sum(axis=1, keepdims=True)


def write(tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


# --- loading -------------------------------------------------------------------------------------------------

def test_missing_suite_is_named(tmp_path):
    with pytest.raises(MlopsError, match=r"behaviour suite not found: .*nope\.yaml"):
        load_suite(tmp_path / "nope.yaml")


def test_misspelt_key_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path, "min_functionality:\n  - {text: hi, lable: billing}\n")
    with pytest.raises(MlopsError) as error:
        load_suite(path)
    message = str(error.value)
    assert f"{path}: min_functionality.0.lable: unknown key" in message
    assert "min_functionality.0.label: Field required" in message


def test_unknown_direction_is_named(tmp_path):
    path = write(tmp_path, "directional:\n  - {text: a, append: b, label: billing, direction: sideways}\n")
    with pytest.raises(MlopsError, match=r"directional\.0\.direction: Input should be 'up' or 'down'"):
        load_suite(path)


def test_invariance_with_a_single_text_is_refused(tmp_path):
    path = write(tmp_path, "invariance:\n  - {name: one, texts: [only]}\n")
    with pytest.raises(MlopsError, match=r"invariance\.0\.texts: List should have at least 2 items"):
        load_suite(path)


def test_empty_file_is_an_empty_suite(tmp_path):
    suite = load_suite(write(tmp_path, ""))
    assert suite == Suite()


def test_repository_suites_load_and_name_their_labels():
    suite = load_suite(ROOT / "configs" / "behaviour.yaml")
    assert suite.labels() == {"billing", "delivery", "technical", "account", "feedback"}
    ag_news = load_suite(ROOT / "configs" / "behaviour_ag_news.yaml")
    assert ag_news.labels() <= {"World", "Sports", "Business", "Sci/Tech"}


def test_invariance_template_expands_every_combination():
    case = Invariance(name="t", template="{a}-{b}", fill={"a": ["1", "2"], "b": ["x", "y"]})
    assert case.variants() == ["1-x", "1-y", "2-x", "2-y"]


@pytest.mark.parametrize(("case", "problem"), [
    ("{name: lonely, template: '{a}'}", "invariance case 'lonely': give `texts`, or `template` with `fill`"),
    ("{name: bare}", "invariance case 'bare': give `texts`, or `template` with `fill`"),
    ("{name: typo, template: '{nme} x', fill: {name: [A, B]}}",
     "invariance case 'typo': template placeholders ['nme'] differ from the `fill` keys ['name']"),
    ("{name: extra, template: '{a} x', fill: {a: [A], b: [B]}}",
     "invariance case 'extra': template placeholders ['a'] differ from the `fill` keys ['a', 'b']"),
    ("{name: positional, template: '{} x', fill: {a: [A]}}", "template placeholders [''] differ"),
])
def test_invariance_case_that_cannot_make_variants_is_refused_on_load(tmp_path, case, problem):
    """Found when the suite loads (and named), not as a KeyError after evaluate has scored every split."""
    path = write(tmp_path, f"invariance:\n  - {case}\n")
    with pytest.raises(MlopsError) as error:
        load_suite(path)
    assert f"{path}: invariance.0: Value error, " in str(error.value)
    assert problem in str(error.value)


# --- running -------------------------------------------------------------------------------------------------

def mixed_suite():
    """Four passing and three failing cases, every kind passing and failing at least once."""
    return Suite.model_validate({
        "min_functionality": [{"text": "please refund me", "label": "billing"},           # pass
                              {"text": "my parcel is lost", "label": "delivery"},         # pass
                              {"text": "hello there", "label": "delivery"}],              # fail: tie -> billing
        "invariance": [{"name": "names", "template": "{who} was charged twice", "fill": {"who": ["Ana", "Omar"]}},
                       {"name": "broken", "texts": ["refund", "parcel arrived"]}],         # pass, fail
        "directional": [{"text": "parcel", "append": " refund", "label": "billing"},      # pass
                        {"text": "parcel", "append": " refund", "label": "billing", "direction": "down"}],  # fail
    })


def test_run_suite_counts_passes_and_failures_per_kind():
    result = run_suite(mixed_suite(), LABELS, KeywordModel().predict_proba)
    assert result["cases"] == 7
    assert result["by_kind"] == {"directional": {"passed": 1, "total": 2},
                                 "invariance": {"passed": 1, "total": 2},
                                 "min_functionality": {"passed": 2, "total": 3}}
    assert result["pass_rate"] == round(4 / 7, 4)


def test_failures_say_what_was_expected_and_observed():
    failures = run_suite(mixed_suite(), LABELS, KeywordModel().predict_proba)["failures"]
    assert [f["kind"] for f in failures] == ["min_functionality", "invariance", "directional"]
    wrong_label, unstable, direction = failures
    assert (wrong_label["case"], wrong_label["expected"], wrong_label["observed"]) == \
        ("hello there", "delivery", "billing")
    assert unstable["case"] == "broken"
    assert unstable["observed"] == {"refund": "billing", "parcel arrived": "delivery"}
    assert direction["expected"] == "P(billing) goes down" and direction["observed"] > 0


def test_min_functionality_cases_go_to_the_model_in_one_call():
    model = KeywordModel()
    suite = Suite.model_validate({"min_functionality": [{"text": "refund", "label": "billing"},
                                                        {"text": "parcel", "label": "delivery"}]})
    assert run_suite(suite, LABELS, model.predict_proba)["pass_rate"] == 1.0
    assert model.calls == [["refund", "parcel"]]


def test_directional_compares_the_text_with_and_without_the_phrase():
    model = KeywordModel()
    suite = Suite.model_validate({"directional": [{"text": "parcel", "append": " arrived", "label": "delivery"}]})
    result = run_suite(suite, LABELS, model.predict_proba)
    assert model.calls == [["parcel", "parcel arrived"]]
    assert result["pass_rate"] == 1.0 and result["failures"] == []


def test_labels_the_model_does_not_predict_are_named():
    suite = Suite.model_validate({"min_functionality": [{"text": "x", "label": "refunds"}]})
    with pytest.raises(MlopsError, match=r"names labels the model does not predict: \['refunds'\]"):
        run_suite(suite, LABELS, KeywordModel().predict_proba)


def test_empty_suite_passes_without_calling_the_model():
    model = KeywordModel()
    result = run_suite(Suite(), LABELS, model.predict_proba)
    assert result == {"pass_rate": 1.0, "cases": 0, "by_kind": {}, "failures": []}
    assert model.calls == []
