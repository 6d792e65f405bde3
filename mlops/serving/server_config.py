"""The service's BentoML configuration, from `serve:` in params.yaml (what `@bentoml.service` is given).

Two pieces of BentoML's per-request work are settings here, both off by default, as they cost the worker's one
request thread (the thread that also parses, validates and answers every request) more than the rest of the
answer: BentoML's access log, a log line per request on stdout (`serve.access_log`; every request is in the
traffic log anyway, and /metrics counts and times them), and its OpenTelemetry middleware's span per request
(`serve.tracing`; without a tracing exporter in BentoML's configuration, the spans go nowhere). With
`tracing: false` the service's own routes are in BentoML's `tracing.excluded_urls`, which the middleware
passes straight through. docs/benchmarks.md (Serving) has what bench/serve.py measured with and without them.
"""

from __future__ import annotations

from typing import Any

from mlops.core.settings import ServeSettings

ROUTES = ("/classify", "/feedback")  # the service's own routes; /metrics, /readyz and the docs are BentoML's


def untraced_urls(serve: ServeSettings) -> list[str]:
    """`tracing.excluded_urls`: regular expressions that OpenTelemetry searches in a request's URL."""
    return [] if serve.tracing else [rf"{route}(\?|$)" for route in ROUTES]


def service_config(serve: ServeSettings) -> dict[str, Any]:
    """The keyword arguments of `@bentoml.service`; with `tracing: true` no tracing key at all, so that what a
    BentoML configuration file says of tracing (exporter, sample rate, its own excluded URLs) stands."""
    config = {"name": serve.name, "workers": serve.workers, "traffic": {"timeout": 60, "max_concurrency": 1024},
              "logging": {"access": {"enabled": serve.access_log}}}
    return config if serve.tracing else config | {"tracing": {"excluded_urls": untraced_urls(serve)}}
