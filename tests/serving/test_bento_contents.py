"""The Bento carries every project module its service imports: bentofile.yaml's `include` patterns cover the
service's import closure (a module moved into a new subpackage would otherwise leave the served Bento unable to
start, and only a whole lifecycle would show it)."""

from __future__ import annotations

import yaml

from tests.core.test_pipeline import import_closure
from tests.helpers import ROOT


def test_bentofile_includes_every_module_the_service_imports() -> None:
    # given the service's module and the patterns bentofile.yaml includes, as BentoML and the build digest glob them
    patterns = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["include"]
    included = {str(path.relative_to(ROOT)) for pattern in patterns for path in ROOT.glob(pattern)}
    # when the service's imports are followed through the project
    closure = import_closure(ROOT / "mlops" / "serving" / "service.py")
    # then each of them is in the Bento
    assert closure <= included, f"bentofile.yaml includes none of {sorted(closure - included)}"
