"""The `data` section: where the labelled text comes from, the generated default corpus, the split, and the
sources ingest may read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlops.core.sections.base import Strict


class SourceSettings(Strict):
    """Where the labelled data comes from (a file, a folder, a URL or the generated corpus) and its format."""

    path: str = Field(min_length=1, description="Where the labelled text comes from: a local file (CSV, TSV, JSONL "
                                                "or Parquet), a directory of such batch files (read in name order), "
                                                "or an http(s):// or s3:// URL; DVC tracks it as a dependency of "
                                                "`ingest`. `mlops ingest` alone also reads `hf:<dataset>[:split]`.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = Field(
        default="auto", description="The file format; `auto` tells it from the file name.")
    header: bool = Field(default=True, description="Whether a CSV or TSV file has a header row; false for a "
                                                   "headerless file, which then names its columns in `columns`.")
    columns: tuple[str, ...] | None = Field(
        default=None, description="Column names of a headerless file, in order; required when `header` is false "
                                  "for a CSV or TSV (null: the file's header names them).")
    text: tuple[str, ...] = Field(
        default=("text",), min_length=1, description="The columns joined with a space into the text.")
    label: str = Field(default="label", description="The label column.")
    label_names: dict[str, str] | None = Field(
        default=None, description="Optional map of raw label to class name (AG News: 1-4 onto World, Sports, "
                                  "Business, Sci/Tech); null keeps the labels as they are.")

    @model_validator(mode="after")
    def _columns_for_headerless(self) -> SourceSettings:
        if not self.header and self.format in ("csv", "tsv", "auto") and not self.columns:
            raise ValueError("a headerless file needs `columns` to name its columns")
        return self



class GeneratedSettings(Strict):
    """The offline default corpus: how many rows, and the classes with their vocabulary."""

    rows: int = Field(default=3000, ge=50, le=1_000_000, description="Rows of the generated support-ticket corpus.")
    classes: tuple[str, ...] = Field(min_length=2, description="The classes of the generated corpus.")



class SplitSettings(Strict):
    """How the data is split into train, validation and test, reproducibly."""

    validation: float = Field(gt=0, lt=0.5, description="Share of the rows held out as the validation split "
                                                        "(stratified, seeded).")
    test: float = Field(gt=0, lt=0.5, description="Share of the rows held out as the test split (with "
                                                  "`data.test_source`, the test split is that file instead).")



SourceScheme = Literal["http", "https", "s3", "gs", "az", "hf"]  # the URL schemes ingest reads (hf: a hub dataset)



class AllowedSourcesSettings(Strict):
    """Where data.source and data.test_source may point (mlops/core/sources.py checks it at configure and ingest).

    A local path inside the project is always allowed; a URL only with its scheme in `schemes` and its host
    (an s3/gs/az URL: its bucket; hf: the hub's host) in `hosts`; a local path outside only inside `paths`."""
    schemes: tuple[SourceScheme, ...] = Field(
        default=("http", "https", "s3", "gs", "az", "hf"),
        description="URL schemes a source may use (each still needs its host in `hosts`).")
    hosts: tuple[str, ...] = Field(
        default=(), description="Hosts a source URL may name (an s3/gs/az URL: its bucket; `*.domain` matches "
                                "subdomains); empty: no URL is allowed.")
    paths: tuple[str, ...] = Field(
        default=(), description="Local folders outside the project a source may read from (relative to the "
                                "project, or absolute).")

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import re

        bad = [host for host in value if not re.fullmatch(r"(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", host)]
        if bad:
            raise ValueError(f"not a host name (or *.domain): {', '.join(map(repr, bad))}")
        return tuple(host.lower() for host in value)



class DataSettings(Strict):
    """The `data:` section: the source, the split, and which sources a run may read."""

    source: SourceSettings = Field(description="Where the labelled text comes from and how its columns map onto text "
                                               "and label.")
    test_source: SourceSettings | None = Field(
        default=None, description="Optional held-out test set: `split` then takes the test split from it and "
                                  "divides `source` into train and validation.")
    generated: GeneratedSettings = Field(description="The offline default corpus the `generate` stage writes.")
    split: SplitSettings = Field(description="The shares of the validation and test splits.")
    allowed_sources: AllowedSourcesSettings = Field(
        default=AllowedSourcesSettings(), description="Where data.source and data.test_source (and a run's "
                                                      "data_source) may point: local paths inside the project, and "
                                                      "only the URL schemes, hosts and outside folders listed here.")
