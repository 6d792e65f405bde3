"""The suite's xdist groups hold: under `make test TEST_WORKERS=2` the tests of a module-scoped fixture run on one
worker, in order, as the ordered promotion tests need (a pytest or xdist upgrade that loses the groups fails here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

SAMPLE = '''
import os
import pytest

@pytest.fixture(scope="module")
def shared():
    return []

@pytest.mark.parametrize("n", range(6))
def test_grouped(shared, n, tmp_path_factory):
    shared.append(n)
    assert shared == list(range(n + 1)), "a grouped test ran without the ones before it"
    with open(os.environ["WORKERS_SEEN"], "a") as seen:
        seen.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("n", range(6))
def test_free(n):
    pass
'''


@pytest.mark.slow  # a pytest run of its own, on two workers: half a minute
def test_a_module_scoped_fixtures_tests_run_on_one_worker_in_order(tmp_path: Path) -> None:
    # given a module of tests sharing a module-scoped fixture, beside free tests, under the suite's conftest
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    seen = tmp_path / "seen.txt"
    # when it runs on two workers with the suite's scheduling
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
                             "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "WORKERS_SEEN": str(seen)})
    # then every grouped test passed, in order, on one and the same worker
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    workers = seen.read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, workers
