"""The `validate` section: the data-validation suite's bounds."""

from __future__ import annotations

from pydantic import Field, model_validator

from mlops.core.sections.base import Strict


class ValidateSettings(Strict):
    """The `validate:` section: the expectations a data set must meet before training sees it."""

    min_rows: int = Field(ge=1, description="Fewer rows than this reject the batch (critical); at most max_rows.")
    max_rows: int = Field(ge=1, description="More rows than this reject the batch (critical).")
    min_text_chars: int = Field(ge=1, description="A shorter text is quarantined; at most max_text_chars.")
    max_text_chars: int = Field(ge=1, description="A longer text is quarantined.")
    max_duplicate_share: float = Field(ge=0, le=1, description="Share of duplicate texts above which the batch is "
                                                               "rejected.")
    min_class_share: float = Field(ge=0, le=1, description="Lower bound of each class's share of the accepted rows "
                                                           "(critical); at most max_class_share.")
    max_class_share: float = Field(gt=0, le=1, description="Upper bound of each class's share of the accepted rows "
                                                           "(critical).")
    max_quarantine_share: float = Field(
        ge=0, le=1, description="Share of quarantined rows above which the batch is rejected whole.")
    max_length_shift: float = Field(gt=0, description="Relative change of the text-length quantiles against the last "
                                                      "accepted batch that raises a warning.")
    max_label_shift: float = Field(gt=0, le=1, description="Total-variation distance of the label mix against the "
                                                           "last accepted batch that raises a warning.")
    labels: tuple[str, ...] | None = Field(
        default=None, min_length=2, description="The known label set: a row whose label is outside it is quarantined "
                                                "(`label_known`), a declared class without a row is reported. null: "
                                                "the values of `data.source.label_names`, or no check.")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ValidateSettings:
        if self.min_rows > self.max_rows:
            raise ValueError("min_rows must not exceed max_rows")
        if self.min_text_chars > self.max_text_chars:
            raise ValueError("min_text_chars must not exceed max_text_chars")
        if self.min_class_share > self.max_class_share:
            raise ValueError("min_class_share must not exceed max_class_share")
        return self
