"""What makes `package` build a new Bento around a champion it already has."""

import shutil
from pathlib import Path

from mlops.core.settings import parse_settings
from mlops.stages.package import build_digest

ROOT = Path(__file__).resolve().parents[2]


def bento_sources(tmp_path: Path) -> Path:
    """bentofile.yaml and the files it includes, in a folder of their own."""
    shutil.copy2(ROOT / "bentofile.yaml", tmp_path / "bentofile.yaml")
    shutil.copytree(ROOT / "mlops", tmp_path / "mlops", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path / "bentofile.yaml"


def test_build_digest_follows_serving_code_and_settings_only(tmp_path, repo_params):
    bentofile = bento_sources(tmp_path)
    base = build_digest(bentofile, parse_settings(repo_params))
    assert build_digest(bentofile, parse_settings(repo_params)) == base  # stable

    repo_params["gate"]["min_accuracy"] = 0.5  # not serving: the same Bento would be built
    assert build_digest(bentofile, parse_settings(repo_params)) == base

    repo_params["serve"]["micro_batch"] += 1
    changed_serve = build_digest(bentofile, parse_settings(repo_params))
    assert changed_serve != base

    service = tmp_path / "mlops" / "serving" / "service.py"
    service.write_text(service.read_text() + "\n# a change\n")
    assert build_digest(bentofile, parse_settings(repo_params)) not in (base, changed_serve)

    (tmp_path / "mlops" / "train.py").write_text("# not in the Bento\n")
    unchanged = build_digest(bentofile, parse_settings(repo_params))
    (tmp_path / "mlops" / "train.py").write_text("# still not in the Bento\n")
    assert build_digest(bentofile, parse_settings(repo_params)) == unchanged
