"""Dotted params keys: one reader, one nester."""

from __future__ import annotations

import pytest

from mlops.core.dotted import get_dotted, nest
from mlops.core.errors import MlopsError


def test_get_dotted_reads_nested_values_and_defaults():
    params = {"train": {"epochs": 2, "lr": None}}
    assert get_dotted(params, "train.epochs") == 2
    assert get_dotted(params, "train.lr", 5) is None  # present, even if null
    assert get_dotted(params, "train.missing", "d") == "d"
    with pytest.raises(KeyError, match="train.epochs.x"):
        get_dotted(params, "train.epochs.x")


def test_nest_builds_the_tree_and_refuses_conflicts():
    assert nest({"train.epochs": 1, "train.lr": 0.1, "seed": 3}) == {"train": {"epochs": 1, "lr": 0.1}, "seed": 3}
    for bad in ({"train..x": 1}, {"train": 1, "train.epochs": 2}, {"train.epochs": 2, "train": 1}):
        with pytest.raises(MlopsError, match="override"):
            nest(bad)
