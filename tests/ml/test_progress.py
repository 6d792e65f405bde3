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
