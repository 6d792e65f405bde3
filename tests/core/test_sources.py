"""Data sources from outside are limited to data.allowed_sources (mlops/core/sources.py)."""

from __future__ import annotations

import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import AllowedSourcesSettings, parse_settings
from mlops.core.sources import check_source, check_sources


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / ".git").mkdir()
    return project


DEFAULT = AllowedSourcesSettings()


@pytest.mark.parametrize("path", ["data/generated/corpus.csv", "data/exports", "./data/../data/x.parquet"])
def test_local_paths_inside_the_project_are_allowed_by_default(project, path):
    check_source(path, DEFAULT, project)
    check_source(str(project / path), DEFAULT, project)


@pytest.mark.parametrize("path, message", [
    ("/etc/passwd", r"^data source /etc/passwd: outside the project, and not in data.allowed_sources.paths \(none\)$"),
    ("../secrets.csv", r"outside the project"),
    ("data/link/x.csv", r"outside the project"),
    (".git/config", r"inside the project's hidden folder \.git/ \(tool state, not data\)"),
    ("https://example.com/data.csv", r"^data source: https host 'example.com' is not allowed "
                                     r"\(data.allowed_sources.hosts: none\)$"),
    ("s3://bucket/data.csv", r"s3 host 'bucket' is not allowed"),
    ("hf:ag_news", r"hf host 'huggingface.co' is not allowed"),
    ("ftp://example.com/data.csv", r"^data source: scheme 'ftp' is not allowed \(data.allowed_sources.schemes: "
                                   r"http, https, s3, gs, az, hf\)$"),
    ("file:///etc/passwd", r"scheme 'file' is not allowed"),
])
def test_the_default_refuses_urls_and_paths_outside_the_project(project, tmp_path, path, message):
    (tmp_path / "elsewhere").mkdir()
    (project / "data" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(MlopsError, match=message):
        check_source(path, DEFAULT, project)


def test_the_message_names_the_host_never_the_urls_credentials_or_path(project):
    with pytest.raises(MlopsError) as raised:
        check_source("https://user:s3cret@data.example.com/private/export.csv?sig=abc", DEFAULT, project)
    message = str(raised.value)
    assert "data.example.com" in message
    assert all(part not in message for part in ("s3cret", "user", "private", "sig=abc"))


def test_listed_hosts_schemes_and_folders_are_allowed(project, tmp_path):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    allowed = AllowedSourcesSettings(schemes=("https", "s3"), hosts=("data.example.com", "*.corp.example", "bucket"),
                                     paths=("../shared/data",))
    for path in ("https://data.example.com/a.csv", "https://eu.files.corp.example/a.csv", "s3://bucket/a.parquet",
                 "../shared/data/train.csv", str(tmp_path / "shared" / "data" / "test.csv")):
        check_source(path, allowed, project)
    for path, message in (("http://data.example.com/a.csv", "scheme 'http' is not allowed"),
                          ("https://corp.example/a.csv", "host 'corp.example' is not allowed"),
                          ("https://data.example.com.evil.io/a.csv", "host 'data.example.com.evil.io'"),
                          ("../shared/other.csv", "not in data.allowed_sources.paths \\(../shared/data\\)")):
        with pytest.raises(MlopsError, match=message):
            check_source(path, allowed, project)


def test_the_allow_list_is_a_setting_checked_when_params_are_read(repo_params):
    assert parse_settings(repo_params).data.allowed_sources == DEFAULT  # params.yaml spells out the default
    repo_params["data"]["allowed_sources"] = {"schemes": ["ftp"]}
    with pytest.raises(MlopsError, match=r"data.allowed_sources.schemes.0: Input should be 'http'"):
        parse_settings(repo_params)
    repo_params["data"]["allowed_sources"] = {"hosts": ["https://example.com"]}
    with pytest.raises(MlopsError, match=r"data.allowed_sources.hosts: .*not a host name"):
        parse_settings(repo_params)


def test_both_sources_are_checked(project, repo_params):
    repo_params["data"]["test_source"] = dict(repo_params["data"]["source"], path="/srv/test.csv")
    with pytest.raises(MlopsError, match=r"^data.test_source.path /srv/test.csv: outside the project"):
        check_sources(parse_settings(repo_params), project)


def test_the_shipped_params_and_presets_pass_their_own_allow_list(repo_params):
    """params.yaml's source is inside the project; configs/ag_news.yaml lists the folder its files lie in."""
    import yaml

    from mlops.core.params import merge
    from tests.helpers import ROOT

    check_sources(parse_settings(repo_params), ROOT)
    merge(repo_params, yaml.safe_load((ROOT / "configs" / "ag_news.yaml").read_text()))
    check_sources(parse_settings(repo_params), ROOT)
    repo_params["data"]["allowed_sources"]["paths"] = []
    with pytest.raises(MlopsError, match="data.source.path ../shared/data/.*: outside the project"):
        check_sources(parse_settings(repo_params), ROOT)
