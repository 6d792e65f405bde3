"""The `feedback` section: labels from production, their screening, the labelling queue and the recent set."""

from __future__ import annotations

from pydantic import Field

from mlops.core.sections.base import Strict


class ScreenSettings(Strict):
    """When a batch of trusted labels is held for review instead of collected (mlops/loop/screening.py)."""

    confident_quantile: float = Field(
        default=0.25, gt=0, lt=1, description="An answer counts as confident when the champion was at least as sure "
                                              "as this quantile of its answers on its own reference (the scored "
                                              "validation split stored with it); its error is measured there too.")
    confident: float | None = Field(
        default=None, gt=0, lt=1, description="A fixed confidence that counts as confident instead, judged against "
                                              "the champion's test error (null: from its reference).")
    min_confident_rows: int = Field(
        default=20, ge=1, description="With fewer confident answers in a batch, no contradiction verdict: too little "
                                      "evidence either way.")
    min_contradiction: float = Field(
        default=0.15, gt=0, lt=1, description="A batch is held when the lower bound of the share of confident "
                                              "answers its labels contradict exceeds this, or error_multiple times "
                                              "the champion's test error if larger.")
    error_multiple: float = Field(
        default=3.0, ge=1, description="The contradiction limit is at least this many times the champion's error "
                                       "on its own confident answers.")
    confidence_level: float = Field(
        default=0.95, gt=0.5, lt=1, description="Confidence of the Wilson interval of the contradiction rate whose "
                                                "lower bound is compared with the limit.")
    max_source_share: float = Field(
        default=0.8, gt=0, le=1, description="In a batch labelled by several sources, one source giving more than "
                                             "this share of it holds the batch for review.")



class FeedbackSettings(Strict):
    """The `feedback:` section: where labels go, how batches are screened, and the labelling queue."""

    max_items: int = Field(default=256, ge=1, description="Items per POST /feedback request at most.")
    batches_dir: str = Field(
        default="data/feedback", min_length=1, description="Where labelled feedback becomes new CSV batches (id, "
                                                           "text, label) that `ingest` reads with the primary "
                                                           "source; a dependency in dvc.yaml, so a new batch re-runs "
                                                           "the lifecycle.")
    held_dir: str = Field(
        default="data/feedback-held", min_length=1,
        description="Where trusted batches that screening holds for review wait, beside the data and never in it "
                    "(`mlops feedback held`, `approve`, `reject`).")
    screen: ScreenSettings = Field(default=ScreenSettings(), description="Screening of trusted labels before they "
                                                                          "become data.")
    queue_dir: str = Field(
        default="reports/labelling", min_length=1, description="Where the labelling queue (a CSV and a Label Studio "
                                                               "import file) is written, by `mlops feedback queue` "
                                                               "and by monitoring when it finds drift.")
    queue_size: int = Field(default=500, ge=1, description="Texts in the labelling queue at most: the least "
                                                           "confident of the window, de-duplicated, already labelled "
                                                           "ones left out.")
    recent_share: float = Field(
        default=0.5, gt=0, lt=1, description="Seeded, stratified share of each feedback batch held out as the recent "
                                             "test set, which evaluate and the gate judge the candidate on too.")
    min_recent_rows: int = Field(
        default=100, ge=1, description="With fewer recent rows the gate says the set is too small to show a "
                                       "difference and judges the test split alone.")
    oversample: int = Field(
        default=3, ge=1, le=100, description="Feedback training rows are repeated this many times (few labels, more "
                                             "weight).")
