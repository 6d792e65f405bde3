"""The drift asset that closes the loop: one identity, matched by value, produced and consumed by the two DAGs."""

import ast

import pytest
from airflow.sdk import Asset

from mlops.orchestration.assets import DRIFT_ASSET, NEW_LABELS_ASSET
from tests.helpers import ROOT


def test_asset_identity():
    assert (DRIFT_ASSET.name, DRIFT_ASSET.uri, DRIFT_ASSET.group) == ("mlops-drift", "mlops://monitoring/drift",
                                                                      "mlops")
    assert DRIFT_ASSET.extra == {}  # what a drift names travels on each event, not on the asset


def test_an_asset_built_from_the_same_fields_is_the_same_asset():
    """The scheduler matches events to schedules by value: a worker's copy must equal the DAG processor's."""
    same = Asset(name="mlops-drift", uri="mlops://monitoring/drift", group="mlops")
    assert DRIFT_ASSET == same and hash(DRIFT_ASSET) == hash(same)
    assert DRIFT_ASSET != Asset(name="mlops-drift", uri="mlops://monitoring/drift-2", group="mlops")


def test_airflow_reserves_its_own_scheme_not_ours():
    with pytest.raises(ValueError, match="reserved"):
        Asset(name="x", uri="airflow://monitoring/drift")
    assert DRIFT_ASSET.uri.split("://")[0] == "mlops"


def dag_keyword(dag_file, keyword):
    """The source of every `keyword=` argument in a DAG file, without importing it (no DagBag, no Airflow db)."""
    tree = ast.parse((ROOT / "dags" / dag_file).read_text())
    return [ast.unparse(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.keyword) and node.arg == keyword]


def test_monitoring_produces_them_and_the_lifecycle_is_scheduled_on_them():
    assert "[DRIFT_ASSET]" in dag_keyword("monitoring.py", "outlets")
    assert "[NEW_LABELS_ASSET]" in dag_keyword("monitoring.py", "outlets")
    assert dag_keyword("lifecycle.py", "schedule") == ["lifecycle_schedule(PROJECT)"]  # mlops.orchestration.triggers


def test_the_new_labels_asset_is_ours_and_distinct():
    assert (NEW_LABELS_ASSET.name, NEW_LABELS_ASSET.uri, NEW_LABELS_ASSET.group) == (
        "mlops-new-labels", "mlops://feedback/new-labels", "mlops")
    assert NEW_LABELS_ASSET != DRIFT_ASSET


def test_the_trigger_module_names_the_assets_uris_without_importing_airflow():
    from mlops.orchestration import triggers

    assert (triggers.DRIFT_URI, triggers.NEW_LABELS_URI) == (DRIFT_ASSET.uri, NEW_LABELS_ASSET.uri)
