"""Scoring in chunks with a progress bar gives exactly what one call gives."""

import numpy as np

from mlops.ml.progress import predict_with_progress, progress


class Echo:
    """A stand-in classifier: probabilities and embeddings that depend only on each text."""

    def predict(self, texts, batch_size=64):
        lengths = np.array([[len(t), 1.0] for t in texts], dtype=np.float32)
        return lengths / lengths.sum(axis=1, keepdims=True), np.array([[len(t)] * 3 for t in texts], np.float32)


def test_chunks_give_the_same_outputs_in_order():
    texts = [f"text {'x' * (i % 17)} {i}" for i in range(1234)]
    whole = Echo().predict(texts)
    chunked = predict_with_progress(Echo(), texts, "score", chunk_size=100)
    assert all(np.array_equal(a, b) for a, b in zip(whole, chunked, strict=True))
    assert list(progress(range(5), "loop")) == [0, 1, 2, 3, 4]


def test_mlops_progress_switches_bars_off_and_on(monkeypatch, capsys):
    from mlops.ml.progress import bars_shown

    # given MLOPS_PROGRESS=1 (bars even though pytest's stderr is no terminal): a bar is drawn
    monkeypatch.setenv("MLOPS_PROGRESS", "1")
    assert bars_shown() is True
    list(progress(range(3), "loop"))
    assert "loop" in capsys.readouterr().err
    # when MLOPS_PROGRESS=0 (what the Airflow tasks set): none
    monkeypatch.setenv("MLOPS_PROGRESS", "0")
    assert bars_shown() is False
    list(progress(range(3), "loop"))
    assert capsys.readouterr().err == ""


def test_training_draws_no_bars_under_mlops_progress_0(monkeypatch, tiny_settings, tmp_path):
    from mlops.ml.training.arguments import training_arguments

    monkeypatch.setenv("MLOPS_PROGRESS", "0")
    assert training_arguments(tiny_settings, tmp_path, steps_per_epoch=4).disable_tqdm is True
    monkeypatch.setenv("MLOPS_PROGRESS", "1")
    assert training_arguments(tiny_settings, tmp_path, steps_per_epoch=4).disable_tqdm is False
