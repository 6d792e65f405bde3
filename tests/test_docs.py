"""The documentation: it builds strictly, names every command and parameter, and speaks of the project only.

The site is built once per run into a temporary folder (about two seconds), so that these checks read what
readers get, the CLI page mkdocs-click renders from the click commands included.
"""

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from mlops.cli import cli
from tests.helpers import ROOT

README_MAX_LINES = 200
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
MACHINE_PATHS = re.compile(r"(?<![\w.])/(work|home|root|tmp)/")
# `#39;` is AG News's HTML residue (an entity that lost its `&`), not a reference; `#123` alone is one
TRACKER = re.compile(r"\bissues? #\d+|(?<![&\w!])#\d+\b(?!;)|\bsession", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def command_paths(group: click.Group, prefix: str = "mlops") -> list[str]:
    """Every command under the group, as typed: `mlops params explain`."""
    paths = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        paths.append(path)
        if isinstance(command, click.Group):
            paths += command_paths(command, path)
    return paths


@pytest.mark.slow  # builds the documentation site
def test_the_site_builds_strictly_and_the_cli_page_lists_every_command(site):
    # given every command of the click group (a command someone adds included)
    page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    # then each has its own entry on the generated CLI page
    missing = [path for path in command_paths(cli) if f">{path}<" not in page]
    assert missing == []


def test_command_paths_walk_the_groups():
    paths = command_paths(cli)
    assert "mlops params explain" in paths and "mlops registry rollback" in paths and "mlops train" in paths


@pytest.mark.slow  # builds the documentation site
def test_every_top_level_params_key_is_on_the_built_params_page(site):
    page = (site / "reference" / "params" / "index.html").read_text(encoding="utf-8")
    keys = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert [key for key in keys if f"<code>{key}</code>" not in page] == []


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= README_MAX_LINES


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_pages_name_no_machine_paths_nor_tracker_items(page):
    text = page.read_text(encoding="utf-8")
    found = MACHINE_PATHS.findall(text) + TRACKER.findall(text)
    assert found == [], f"{page.relative_to(ROOT)}: {found}"


@pytest.mark.parametrize("text, flagged", [
    ("see issue #12", True), ("fixed in #40", True), ("a session of work", True), ("cd /work/main", True),
    ("Haiti #39;s", False), ("`&?#39;`", False), ("logs/traffic/", False), ("<tmp>/mlops-work", False),
    ("text-classifier#prod!#5", False),  # a GTO unassignment tag
])
def test_the_path_and_tracker_patterns_flag_what_they_should(text, flagged):
    assert bool(MACHINE_PATHS.search(text) or TRACKER.search(text)) is flagged


def test_every_nav_entry_is_a_page_and_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def entries(items):
        for item in items:
            for value in (item.values() if isinstance(item, dict) else [item]):
                yield from entries(value) if isinstance(value, list) else [value]

    listed = set(entries(config["nav"]))
    pages = {str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md")}
    assert listed == pages
    assert all(Path(ROOT / "docs" / page).is_file() for page in listed)
