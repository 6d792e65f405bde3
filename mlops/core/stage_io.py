"""A stage's inputs and outputs as one typed, frozen object, built from its command in dvc.yaml.

`dvc.yaml` is the one place a stage's paths are written: `mlops gate --metrics metrics/evaluate.json ...`.
Each stage declares a `StageIO` subclass whose fields are the options of that command (`--scored-test` is the
field `scored_test`), and its `run(settings, io)` reads them by name. Eight positional paths, where one swap in
a caller goes unnoticed, become named fields that a typo or a missing path refuses at once. The CLI builds the
object with `from_dvc`, from the project's dvc.yaml, and an option given on the command line replaces its one
field; tests and the Airflow tasks build it directly, with the paths they choose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.core.errors import MlopsError
from mlops.core.stage_commands import stage_paths


def field_of(option: str) -> str:
    """`scored-test` (the dvc.yaml option) -> `scored_test` (the field)."""
    return option.replace("-", "_")


class StageIO(BaseModel):
    """The paths a stage reads and writes. Subclasses set `stage` to the dvc.yaml stage whose command fills it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    stage: ClassVar[str]

    @classmethod
    def from_dvc(cls, project: Path | str | None = None, **overrides: Path | None) -> Self:
        """The stage's paths as its dvc.yaml command passes them; an override that is not None replaces one.

        An option the command passes that the IO does not declare is an error (dvc.yaml and the code disagree),
        as is a declared path that neither the command nor an override gives."""
        options = stage_paths(Path.cwd() if project is None else project, cls.stage)
        unknown = sorted(option for option in options if field_of(option) not in cls.model_fields)
        if unknown:
            raise MlopsError(f"dvc.yaml: stage {cls.stage} passes {', '.join('--' + u for u in unknown)}, which "
                             f"{cls.__name__} does not declare")
        declared = {field_of(option): Path(value) for option, value in options.items()}
        values: dict[str, Any] = {**declared, **{name: value for name, value in overrides.items() if value is not None}}
        return cls.build(**values)

    @classmethod
    def build(cls, **values: Any) -> Self:
        """The IO from these paths, a missing or unknown one named in a one-line error rather than a traceback."""
        try:
            return cls(**values)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(str(part) for part in problem['loc']) or cls.stage}: {problem['msg']}"
                                 for problem in error.errors())
            raise MlopsError(f"{cls.__name__} (stage {cls.stage}): {problems}") from None
