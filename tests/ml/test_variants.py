"""Variant names (mlops/ml/variants.py): whose a variant is, its form, its files, and whether it is int8."""

from __future__ import annotations

import pytest

from mlops.core.errors import MlopsError
from mlops.ml.variants import SERVABLE, is_int8, variant_files, variant_form


@pytest.mark.parametrize(("variant", "expected"), [
    ("fp32", (False, "fp32")), ("onnx_int8", (False, "onnx_int8")),
    ("student_fp32", (True, "fp32")), ("student_torch_int8", (True, "torch_int8")),
])
def test_a_variant_names_its_owner_and_form(variant: str, expected: tuple[bool, str]) -> None:
    assert variant_form(variant) == expected


def test_int8_is_the_quantised_forms_of_teacher_and_student_alike() -> None:
    assert sorted(v for v in SERVABLE if is_int8(v)) == [
        "onnx_int8", "student_onnx_int8", "student_torch_int8", "torch_int8"]


def test_each_variant_names_the_files_it_needs() -> None:
    assert variant_files("fp32") == () and variant_files("torch_int8") == ()
    assert variant_files("student_torch_int8") == ("student_fp32/model.safetensors",)
    assert variant_files("student_onnx_fp32") == ("student_onnx_fp32/model.onnx",)


def test_an_unknown_variant_is_refused_naming_it() -> None:
    with pytest.raises(MlopsError, match="unknown model variant 'onnx_int4'"):
        is_int8("onnx_int4")
