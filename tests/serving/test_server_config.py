"""The service's BentoML configuration: access log and tracing off by default, on when params say so."""

from __future__ import annotations

import pytest
from opentelemetry.util.http import ExcludeList

from mlops.core.settings import parse_settings
from mlops.serving.server_config import service_config, untraced_urls

SERVICE_URLS = ["http://127.0.0.1:3000/classify", "http://10.0.0.7:8080/feedback", "http://h/classify?x=1"]
OTHER_URLS = ["http://127.0.0.1:3000/metrics", "http://127.0.0.1:3000/readyz", "http://h/classifyall",
              "http://h/feedbacks", "http://h/"]


def serve_settings(repo_params, **changes):
    repo_params["serve"].update(changes)
    return parse_settings(repo_params).serve


def test_by_default_the_service_routes_are_neither_access_logged_nor_traced(repo_params):
    # given the repository's params
    serve = serve_settings(repo_params)
    # when the service's configuration is derived
    config = service_config(serve)
    # then BentoML logs no line per request and its OpenTelemetry middleware skips exactly the service's routes
    assert config["logging"] == {"access": {"enabled": False}}
    excluded = ExcludeList(config["tracing"]["excluded_urls"])  # as BentoML builds it from a list
    assert all(excluded.url_disabled(url) for url in SERVICE_URLS)
    assert not any(excluded.url_disabled(url) for url in OTHER_URLS)


@pytest.mark.parametrize("url", SERVICE_URLS + OTHER_URLS)
def test_tracing_on_traces_every_route(repo_params, url):
    serve = serve_settings(repo_params, tracing=True, access_log=True)
    assert untraced_urls(serve) == []
    assert not ExcludeList(untraced_urls(serve)).url_disabled(url)
    assert "tracing" not in service_config(serve)  # a BentoML config file's own tracing settings stand
    assert service_config(serve)["logging"] == {"access": {"enabled": True}}


def test_the_rest_of_the_config_comes_from_serve(repo_params):
    serve = serve_settings(repo_params, name="news-classifier", workers=3)
    config = service_config(serve)
    assert (config["name"], config["workers"]) == ("news-classifier", 3)
    assert config["traffic"]["max_concurrency"] >= 64  # the benchmark's 64 clients are never refused by BentoML
