"""The `optimize` section: the converted serving variants."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mlops.core.sections.base import Strict

VariantName = Literal["torch_int8", "onnx_fp32", "onnx_int8"]



class OptimizeSettings(Strict):
    """Which converted variants of the candidate the optimize stage builds (none: fp32 alone serves)."""
    variants: tuple[VariantName, ...] = Field(
        default=("onnx_fp32", "onnx_int8"), description="Converted variants of the candidate built for serving: "
                                                        "`torch_int8` (torch dynamic int8 at load time, nothing "
                                                        "stored), `onnx_fp32` (ONNX Runtime with its transformer "
                                                        "fusions), `onnx_int8` (ONNX Runtime dynamic int8); `[]` "
                                                        "builds none and fp32 alone serves.")

    @field_validator("variants")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value
