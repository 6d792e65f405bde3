"""Promotion: the one step that changes the champion, and only for a Bento that was seen serving.

The pipeline (DVC stages) builds and judges: `package` leaves a candidate, a
stored model and its built Bento. `mlops promote` (after `dvc repro` in `make
run`, after the gate's branch in the lifecycle DAG) and `mlops registry
promote TAG` (by hand) both end here. As TFX's InfraValidator does, the
candidate Bento is started as a real server on a free loopback port and
queried before the registry points at it: one text, a list, a bad request
(4xx), /readyz, /metrics, agreement with the same variant run offline on
scored test rows, and its p95 latency. The gate has already judged each
variant's accuracy on the whole test split; what infra validation proves is
that the server reproduces the stored variant: every label equal, except (an
int8 variant only) where the offline top two are within `INT8_MARGIN`, since
dynamic int8 takes its activation ranges from each batch and a near tie can
flip with what a text is batched with. (Against fp32, an int8 variant's
98-99% label agreement on AG News failed a 99% bar by one text in 64.) The first
check that fails stops the promotion; the decision (reports/promotion.json)
names it, and the champion stays as it was. With a canary share (`--canary`,
`promote.strategy: canary`) a candidate that passed serves that share of
requests first and is promoted in full or rolled back on what the share showed
(mlops/serving/canary_rollout.py).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from mlops.core import registry
from mlops.core.environment import FEEDBACK_DIR_ENV, MODEL_TAG_ENV, TRAFFIC_DIR_ENV
from mlops.core.errors import MlopsError
from mlops.core.io import read_table
from mlops.core.records import PackageResult, PromotionRecord
from mlops.core.settings import Settings
from mlops.ml.bento_build import candidate_of
from mlops.ml.variants import is_int8, load_variant, served_variant


class CheckFailed(Exception):
    """One infra-validation check did not hold; its message says what was seen."""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: Any = None, key: str | None = None, raw: bytes | None = None,
         timeout: float = 60) -> tuple[int, str]:
    """One request; status and text, 4xx/5xx included, no exception for an HTTP error."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def start_server(bento: str, model_tag: str, settings: Settings, workdir: Path, key: str) -> tuple[Any, str]:
    """`bentoml serve BENTO` pinned to `model_tag`, on a free loopback port, logging traffic to a scratch dir."""
    import sys

    port = free_port()
    serve = settings.serve
    # Only the check's own client key: the candidate answers nobody else, and its logs stay in the scratch dir
    env = {name: value for name, value in os.environ.items()
           if name not in (serve.label_key_env, serve.metrics_key_env, serve.keys_file_env)}
    env |= {MODEL_TAG_ENV: model_tag, TRAFFIC_DIR_ENV: str(workdir / "traffic"),
            FEEDBACK_DIR_ENV: str(workdir / "feedback"), serve.api_key_env: key, "BENTOML_DO_NOT_TRACK": "True"}
    log = open(workdir / "server.log", "w")  # noqa: SIM115 - closed in stop_server
    bentoml_bin = Path(sys.executable).parent / "bentoml"
    # In our own process group: whoever stops `mlops promote`'s group (a killed Airflow task) stops this server
    # too; and tied to this process, so that a promote killed alone (SIGKILL of its pid) takes the server with it.
    tie = [sys.executable, "-m", "mlops.serving.worker_lifetime", str(os.getpid()), "--"]
    process = subprocess.Popen([*tie, str(bentoml_bin), "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    process.log = log  # type: ignore[attr-defined]
    return process, f"http://127.0.0.1:{port}"


def stop_server(process: Any) -> None:
    """SIGTERM to the server (BentoML's arbiter stops its workers), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        try:
            process.send_signal(sig)
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    process.log.close()


def log_tail(workdir: Path, lines: int = 3) -> str:
    text = (workdir / "server.log").read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:]) or "no output"


def wait_ready(process: Any, base: str, timeout: float, workdir: Path) -> float:
    """Seconds until /readyz answered 200; CheckFailed if the server exits or the time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise CheckFailed(f"the server exited with status {process.returncode}: {log_tail(workdir)}")
        try:
            if http("GET", f"{base}/readyz", timeout=2)[0] == 200:
                return round(time.monotonic() - started, 1)
        except OSError:
            pass
        time.sleep(0.5)
    raise CheckFailed(f"/readyz did not answer 200 within {timeout:.0f} s: {log_tail(workdir)}")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def check_one_text(base: str, key: str, text: str, labels: list[str], model_tag: str) -> str:
    status, body = http("POST", f"{base}/classify", {"text": text}, key)
    expect(status == 200, f"status {status}: {body[:200]}")
    answer = json.loads(body)
    expect(isinstance(answer, dict) and answer.get("label") in labels, f"not one labelled answer: {body[:200]}")
    expect(answer.get("model_version") == model_tag,
           f"answered by {answer.get('model_version')!r}, not the candidate {model_tag}")
    return f"label {answer['label']} from {model_tag}"


def check_list(base: str, key: str, texts: list[str], labels: list[str]) -> str:
    status, body = http("POST", f"{base}/classify", {"texts": texts}, key)
    expect(status == 200, f"status {status}: {body[:200]}")
    answers = json.loads(body)
    expect(isinstance(answers, list) and len(answers) == len(texts)
           and all(a.get("label") in labels for a in answers), f"not {len(texts)} labelled answers: {body[:200]}")
    return f"{len(answers)} answers"


def check_bad_request(base: str, key: str) -> str:
    status, body = http("POST", f"{base}/classify", raw=b'{"texts": []}', key=key)
    expect(400 <= status < 500, f"an empty list got {status}, not a 4xx: {body[:200]}")
    return f"an empty list got {status}"


def check_metrics(base: str) -> str:
    status, body = http("GET", f"{base}/metrics")
    expect(status == 200 and "bentoml_service" in body, f"/metrics answered {status} without BentoML's metrics")
    return f"{len(body.splitlines())} lines"


# How far apart (probability points) the offline top two of an int8 variant may be for a served label to differ
INT8_MARGIN = 0.05


def offline_answers(model_tag: str, texts: list[str], variant: str) -> tuple[np.ndarray, list[str]]:
    """The stored model's probabilities for `texts` as `variant` (what the server runs), in this process, and its
    labels: what the server must reproduce."""

    runtime = load_variant(registry.model_path(model_tag), variant)
    return runtime.predict_proba(texts), list(runtime.labels)


def served_labels(base: str, key: str, texts: list[str], chunk: int) -> list[str]:
    labels = []
    for start in range(0, len(texts), chunk):
        status, body = http("POST", f"{base}/classify", {"texts": texts[start:start + chunk]}, key)
        expect(status == 200, f"status {status} on scored rows: {body[:200]}")
        labels += [answer["label"] for answer in json.loads(body)]
    return labels


def check_agreement(base: str, key: str, texts: list[str], proba: np.ndarray, labels: list[str], margin: float,
                    chunk: int) -> str:
    """Every served label equals the offline one, but where the offline top two are within `margin`."""
    served = served_labels(base, key, texts, chunk)
    top_two = np.sort(proba, axis=1)[:, -2:]  # a classifier has two labels at least (validate refuses fewer)
    close = (top_two[:, 1] - top_two[:, 0]) <= margin
    expected = [labels[int(i)] for i in proba.argmax(axis=1)]
    differ = [i for i, (a, b) in enumerate(zip(served, expected, strict=True)) if a != b]
    wrong = [i for i in differ if not close[i]]
    expect(not wrong, f"served labels differ from the offline model on {len(wrong)} of {len(texts)} rows where its "
                      f"top two are more than {margin} apart (first: row {wrong[0] if wrong else None})")
    return (f"{len(texts) - len(differ)} of {len(texts)} rows equal"
            + (f"; {len(differ)} near ties (top two within {margin}) differ" if differ else ""))


def measure_p95(base: str, key: str, texts: list[str], samples: int) -> float:
    """Single-text request latency through the server, sequential, after a warm-up."""
    timings = []
    for i in range(samples + 3):
        started = time.perf_counter()
        status, body = http("POST", f"{base}/classify", {"text": texts[i % len(texts)]}, key)
        expect(status == 200, f"status {status}: {body[:200]}")
        if i >= 3:
            timings.append((time.perf_counter() - started) * 1000)
    return round(float(np.percentile(timings, 95)), 2)


def scored_texts(scored: Path | None, model_tag: str, rows: int) -> list[str]:
    """Texts to check agreement on: the scored test split, else the reference stored with the model."""
    stored = registry.model_path(model_tag) / registry.REFERENCE_FILE
    source = scored if scored is not None and scored.is_file() else stored
    if not source.is_file():
        raise MlopsError(f"no scored rows to check the candidate on: neither {scored} nor {source} exists")
    return read_table(source)["text"].astype(str).head(rows).tolist()


def infra_validate(entry: dict[str, Any], settings: Settings, scored: Path | None) -> dict[str, Any]:
    """Start the candidate's Bento and run every check; the first failure ends it. Returns the checks."""
    promote = settings.promote
    texts = scored_texts(scored, entry["model"], promote.agreement_rows)
    labels_path = registry.model_path(entry["model"]) / "label_map.json"
    labels = json.loads(labels_path.read_text())["labels"]

    precision = served_variant(registry.model_path(entry["model"]), settings.serve.precision)
    margin = INT8_MARGIN if is_int8(precision) else 0.0
    key = secrets.token_urlsafe(16)
    checks: list[dict[str, Any]] = []
    p95 = None
    with tempfile.TemporaryDirectory(prefix="infra-validation-") as scratch:
        workdir = Path(scratch)
        process, base = start_server(entry["bento"], entry["model"], settings, workdir, key)
        steps = [
            ("ready", lambda: f"/readyz 200 after {wait_ready(process, base, promote.ready_timeout_s, workdir)} s"),
            ("one_text", lambda: check_one_text(base, key, texts[0], labels, entry["model"])),
            ("list", lambda: check_list(base, key, texts[:8], labels)),
            ("bad_request", lambda: check_bad_request(base, key)),
            ("metrics", lambda: check_metrics(base)),
            ("agreement", lambda: check_agreement(base, key, texts, *offline_answers(entry["model"], texts, precision),
                                                  margin, settings.serve.max_texts)),
            ("latency", lambda: f"p95 {measure_p95(base, key, texts, promote.latency_samples)} ms"),
        ]
        try:
            for name, step in steps:
                try:
                    detail = step()
                except CheckFailed as error:
                    checks.append({"check": name, "passed": False, "detail": str(error)})
                    break
                except (OSError, ValueError, KeyError) as error:
                    checks.append({"check": name, "passed": False, "detail": f"{type(error).__name__}: {error}"})
                    break
                checks.append({"check": name, "passed": True, "detail": detail})
                if name == "latency":
                    p95 = float(detail.split()[1])
        finally:
            stop_server(process)
    failed = next((c for c in checks if not c["passed"]), None)
    return {"passed": failed is None, "failed_check": failed["check"] if failed else None, "checks": checks,
            "served_p95_ms": p95, "precision": precision, "agreement_margin": margin, "rows": len(texts)}


def promote_entry(entry: dict[str, Any], settings: Settings, scored: Path | None, out: Path,
                  by: str, canary: float | None = None) -> dict[str, Any]:
    """Infra-validate `entry` (model and Bento) and promote it if every check passed, at once or (`canary`, a
    share of requests) through a canary (mlops/serving/canary_rollout.py); write the decision."""
    current = registry.champion()
    if current and (current["model"], current["bento"]) == (entry["model"], entry["bento"]):
        result = {"promoted": False, "reason": f"{entry['model']} (bento {entry['bento']}) is already the champion",
                  "candidate": entry, "champion": current["model"]}
        PromotionRecord.model_validate(result).write(out)
        print(f"promote: nothing to do: {result['reason']}")
        return result
    validation = infra_validate(entry, settings, scored)
    result = {"candidate": entry, "champion_before": current["model"] if current else None,
              "infra_validation": validation, "promoted_by": by, "decided_at": registry.now()}
    if not validation["passed"]:
        failed = validation["checks"][-1]
        result.update(promoted=False, reason=f"infra validation failed at `{failed['check']}`: {failed['detail']}")
        PromotionRecord.model_validate(result).write(out)
        registry.log_event("promotion_refused", model=entry["model"], bento=entry["bento"],
                           failed_check=failed["check"])
        raise MlopsError(f"{entry['model']} NOT promoted: {result['reason']} (decision in {out}); the champion "
                         f"is still {current['model'] if current else 'none'}")
    if canary is not None and current is not None:
        from mlops.serving.canary_rollout import run_canary

        return run_canary({**entry, "promoted_by": by}, settings, canary, result, out)
    if canary is not None:
        result["canary"] = "skipped: no champion to compare with, so the first model is promoted directly"
    promoted = registry.promote({**entry, "promoted_by": by, "served_p95_ms": validation["served_p95_ms"]})
    result.update(promoted=True, reason="every infra-validation check passed", champion=promoted["model"],
                  strategy="direct")
    PromotionRecord.model_validate(result).write(out)
    summary = ", ".join(f"{c['check']} ok" for c in validation["checks"])
    print(f"promote: {entry['model']} (bento {entry['bento']}) is the champion; {summary}; "
          f"served p95 {validation['served_p95_ms']} ms -> {out}")
    return result


def canary_share(settings: Settings, given: float | None) -> float | None:
    """The share a promotion's canary serves: `--canary SHARE`, else `promote.canary_share` when
    `promote.strategy` is `canary`; None: direct."""
    if given is not None:
        if not 0 < given < 1:
            raise MlopsError(f"--canary takes the share of requests the candidate serves, between 0 and 1 (not "
                             f"included), not {given}")
        return given
    return settings.promote.canary_share if settings.promote.strategy == "canary" else None


def promote_candidate(settings: Settings, package_path: Path, scored: Path | None, out: Path,
                      canary: float | None = None) -> dict[str, Any]:
    """`mlops promote`: promote the candidate the gate accepted and `package` built, if it serves (through a
    canary with `canary` or `promote.strategy: canary`)."""
    share = canary_share(settings, canary)
    if not package_path.is_file():
        raise MlopsError(f"no package result at {package_path}: run the pipeline (dvc repro) first")
    package = PackageResult.read(package_path)
    if package.status not in ("candidate", "unchanged"):  # an outcome: the CLI ends with REJECTED_EXIT
        result = {"promoted": False, "rejected": True,
                  "reason": f"the gate rejected the model: {'; '.join(package.reasons or [])}",
                  "next_step": package.next_step}
        PromotionRecord.model_validate(result).write(out)
        print(f"promote: nothing promoted: {result['reason']}")
        return result
    entry = package.entry()
    if registry.retired_by_rollback(entry["model"]):  # `make run` after a rollback must not undo it
        result = {"promoted": False, "candidate": entry,
                  "reason": f"{entry['model']} was rolled back; `mlops registry promote {entry['model']}` "
                            "deploys it again on purpose"}
        PromotionRecord.model_validate(result).write(out)
        print(f"promote: nothing promoted: {result['reason']}")
        return result
    from mlops.ml.shadow_report import shadow_refusal

    current = registry.champion()
    refused = None if current and current["model"] == entry["model"] else shadow_refusal(settings, entry)
    if refused is not None:  # promote.require_shadow: an outcome, as a rejection by the gate (exit 3)
        PromotionRecord.model_validate(refused).write(out)
        print(f"promote: nothing promoted: {refused['reason']}")
        return refused
    return promote_entry(entry, settings, scored, out, by="pipeline", canary=share)


def promote_by_hand(settings: Settings, model_tag: str, bentofile: Path, scored: Path | None,
                    out: Path, canary: float | None = None) -> dict[str, Any]:
    """`mlops registry promote TAG`: any stored model, through the same checks; directly unless `canary` (a
    share) is given, whatever `promote.strategy` says (that is the pipeline's)."""

    share = None if canary is None else canary_share(settings, canary)
    return promote_entry(candidate_of(model_tag, bentofile, settings), settings, scored, out, by="hand",
                         canary=share)
