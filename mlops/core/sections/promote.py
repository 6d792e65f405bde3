"""The `promote` section: infra validation, shadow evidence and the canary."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlops.core.sections.base import Strict


class ShadowEvidence(Strict):
    """What `mlops promote` asks of the shadow's record of a candidate before promoting it."""

    min_answers: int = Field(default=200, ge=1, description="Served answers the candidate must have scored in "
                                                            "shadow.")
    min_agreement: float | None = Field(
        default=None, ge=0, le=1, description="Share of those answers on which it must agree with the champion "
                                              "(null: not asked).")
    min_labels: int = Field(default=30, ge=1, description="Trusted labels among its shadowed answers needed before "
                                                          "min_live_accuracy is judged.")
    min_live_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Accuracy it must reach on the trusted labels of the answers it "
                                              "shadowed (null: not asked).")



class PromoteSettings(Strict):
    """The `promote:` section: the checks a candidate server passes before it takes the traffic, and approval."""

    agreement_rows: int = Field(default=64, ge=1, description="Scored test rows the started candidate must label as "
                                                              "its variant does offline (an int8 variant may differ "
                                                              "on near ties only).")
    latency_samples: int = Field(default=30, ge=5, description="Single-text requests whose p95 the promotion records.")
    ready_timeout_s: float = Field(
        default=180, gt=0, description="Seconds the candidate server has to answer /readyz; a server not ready by "
                                       "then fails the `ready` check.")
    approval: Literal["auto", "human"] = Field(
        default="auto", description="`human`: a lifecycle DAG run with a new candidate waits before `promote` for a "
                                    "person's approval (Airflow's ApprovalOperator; mlops/orchestration/approval.py); "
                                    "`mlops promote` by hand never waits. `auto`: promote as soon as the gate accepts.")
    approval_timeout_h: float = Field(
        default=72, gt=0, description="Hours an approval waits; no answer by then counts as a rejection.")
    require_shadow: ShadowEvidence | None = Field(
        default=None, description="Evidence from serve.shadow that `mlops promote` needs before it promotes a "
                                  "candidate (null: none); without it the candidate is refused, exit 3.")
    strategy: Literal["direct", "canary"] = Field(
        default="direct", description="How `mlops promote` (and the lifecycle DAG's `promote` task) moves traffic "
                                      "to a candidate that passed infra validation: `direct`, all at once; "
                                      "`canary`, `canary_share` of requests first, then all or none "
                                      "(mlops/serving/canary.py).")
    canary_share: float = Field(
        default=0.1, gt=0, lt=1, description="Share of requests a canary serves when `strategy` is `canary` "
                                             "(`--canary SHARE` on the command line sets it for one promotion).")
    canary_requests: int = Field(
        default=500, ge=1, description="Healthy canary answers after which the candidate is promoted in full.")
    canary_min_requests: int = Field(
        default=50, ge=1, description="Answers per version before the latency ratio is judged; the error rate "
                                      "is taken over at least this many requests, so one early error is 1/N.")
    canary_max_error_rate: float = Field(
        default=0.02, ge=0, lt=1, description="Share of canary requests that may fail (each is retried on the "
                                              "champion); above it the canary is rolled back.")
    canary_max_latency_ratio: float = Field(
        default=1.5, gt=1, description="Canary p95 latency over the champion's, in the same service and period, "
                                       "above which the canary is rolled back.")
    canary_max_accuracy_drop: float = Field(
        default=0.02, ge=0, lt=1, description="With `monitor.live_min_labels` trusted labels for both versions: "
                                              "rolled back when even the upper bound of the canary's live accuracy "
                                              "(95% Wilson) is below the champion's accuracy minus this.")
    canary_timeout_s: float = Field(
        default=3600, gt=0, description="Seconds a canary may take to reach `canary_requests`; by then it is rolled "
                                        "back (too little traffic is no evidence). Services stop routing to a "
                                        "canary past this time even if `mlops promote` was killed.")
    canary_check_s: float = Field(
        default=1.0, gt=0, description="Seconds between `mlops promote`'s looks at the canary's counts (the "
                                       "services write them as often).")
