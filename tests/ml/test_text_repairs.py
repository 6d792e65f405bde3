"""Text repairs travel with the model: the tokenizer applies them in training, evaluation, ONNX and serving."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mlops.core.errors import MlopsError
from mlops.core.settings import parse_settings
from mlops.ml.model import Classifier, read_label_map, save_label_map
from mlops.ml.text_repairs import apply_text_repairs, load_tokenizer

ROOT = Path(__file__).resolve().parents[2]
# AG News's residue, as its rows carry it, and the text a user would have sent
RAW = r"Storm shows Haiti #39;s straits, quot;Hello quot; Dell Inc. &lt;DELL.O&gt; rose\to  #36;10 at AT amp;T"
CLEAN = "Storm shows Haiti's straits, \"Hello\" Dell Inc. <DELL.O> rose to $10 at AT&T"


def ag_news_repairs() -> list[tuple[str, str]]:
    preset = yaml.safe_load((ROOT / "configs/ag_news.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"]["text_repairs"] = preset["model"]["text_repairs"]
    return parse_settings(params).model.repairs()


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_the_ag_news_preset_repairs_its_residue_into_the_tokens_of_clean_text(tokenizer):
    # given the tokens of the raw row differ from those of the clean text
    assert tokenizer(RAW)["input_ids"] != tokenizer(CLEAN)["input_ids"]
    # when the preset's repairs run in front of the tokenizer's normaliser
    apply_text_repairs(tokenizer, ag_news_repairs())
    # then the raw row tokenises exactly as the clean text does
    assert tokenizer(RAW)["input_ids"] == tokenizer(CLEAN)["input_ids"]


def test_repairs_leave_words_that_merely_end_like_an_entity(tokenizer):
    text = "an aliquot; a champ; room 39; row #12"
    before = tokenizer.tokenize(text)
    apply_text_repairs(tokenizer, ag_news_repairs())
    assert tokenizer.tokenize(text) == before


def test_applying_the_same_repairs_twice_runs_them_once(tokenizer):
    repairs = [("#39;", "'")]
    apply_text_repairs(tokenizer, repairs)
    once = tokenizer.backend_tokenizer.normalizer.__getstate__()
    apply_text_repairs(tokenizer, repairs)
    assert tokenizer.backend_tokenizer.normalizer.__getstate__() == once
    assert len(json.loads(once)["normalizers"]) == 2  # the repair, then the tokenizer's own normaliser


def test_no_repairs_leave_the_tokenizer_as_it_was(tokenizer):
    before = tokenizer.backend_tokenizer.normalizer.__getstate__()
    apply_text_repairs(tokenizer, [])
    assert tokenizer.backend_tokenizer.normalizer.__getstate__() == before


def test_a_slow_tokenizer_is_refused_by_name():
    class SlowTokenizer:
        pass

    with pytest.raises(MlopsError, match="fast .*SlowTokenizer"):
        apply_text_repairs(SlowTokenizer(), [("#39;", "'")])


def test_a_saved_model_reloads_with_its_repairs(tiny_classifier_dir, tmp_path):
    # given a model directory whose label map records repairs
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_classifier_dir, model_dir)
    labels = read_label_map(tiny_classifier_dir)["labels"]
    save_label_map(model_dir, labels, 48, ag_news_repairs())
    # when it is loaded for inference
    classifier = Classifier.load(model_dir, device="cpu")
    # then the raw row and the clean text get the same tokens, hence the same probabilities
    raw, clean = classifier.tokenize([RAW, CLEAN])["input_ids"]
    assert raw == clean
    proba = classifier.predict_proba([RAW, CLEAN])
    assert proba[0] == pytest.approx(proba[1], abs=1e-6)
    assert read_label_map(model_dir)["text_repairs"][0] == list(ag_news_repairs()[0])


def test_a_model_saved_before_repairs_existed_loads_without_any(tiny_classifier_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_classifier_dir, model_dir)
    label_map = read_label_map(model_dir)
    label_map.pop("text_repairs", None)
    (model_dir / "label_map.json").write_text(json.dumps(label_map))
    tokenizer = load_tokenizer(model_dir)
    assert tokenizer(RAW)["input_ids"] != tokenizer(CLEAN)["input_ids"]
