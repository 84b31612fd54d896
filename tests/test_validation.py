"""medsr.validation: one-line UsageError messages and the StrEnums of the closed name sets."""

from __future__ import annotations

import pytest

from medsr.errors import UsageError
from medsr.validation import (
    Degradation,
    Interpolation,
    Modality,
    Precision,
    check_degradation,
    check_interpolation,
    check_io_modality,
    check_modality,
    check_modality_or_auto,
    check_precision,
    check_range,
    check_scale,
    check_scales,
    look_up_option,
)


def test_look_up_option_is_case_insensitive_and_names_the_choices() -> None:
    assert look_up_option("kind", "L1", ("l1", "l2")) == "l1"
    with pytest.raises(UsageError) as err:
        look_up_option("kind", "l3", ("l1", "l2"))
    assert str(err.value) == "`kind` must be one of 'l1', 'l2', got 'l3'."
    with pytest.raises(UsageError):
        look_up_option("kind", 1, ("l1",))


def test_str_enums_are_their_strings() -> None:
    assert Modality("ct") is Modality.CT and Modality.XRAY == "xray"
    assert [str(m) for m in Modality] == ["xray", "ct", "mr"]
    assert list(Degradation) == ["bicubic", "modality"]
    assert list(Precision) == ["fp32", "bf16", "fp16"]
    assert list(Interpolation) == ["bicubic", "lanczos"]


def test_modality_and_scale_checks() -> None:
    assert check_modality(None) is None and check_modality("mr") == "mr"
    with pytest.raises(UsageError, match=r"`modality` must be one of \('xray', 'ct', 'mr'\) or None, got 'pet'"):
        check_modality("pet")
    assert check_io_modality("other") == "other"
    with pytest.raises(UsageError, match="`modality` must be one of xray, ct, mr, other or None, got 'pet'"):
        check_io_modality("pet")
    assert check_scale(4) == 4
    with pytest.raises(UsageError, match="`scale` must be one of 2, 4, got 3."):
        check_scale(3)


def test_range_check() -> None:
    assert check_range("r", (0, 1)) == (0.0, 1.0)
    with pytest.raises(UsageError, match="0 < low"):
        check_range("r", (0, 1), positive=True)
    with pytest.raises(UsageError, match="pair"):
        check_range("r", 3)


def test_the_checks_inference_and_evaluation_can_call_keep_their_messages() -> None:
    assert check_scales([4, 2, 4]) == (4, 2)
    with pytest.raises(UsageError, match=r"`scales` must be taken from \(2, 4\), got \(3,\)."):
        check_scales([3])
    assert check_precision("bf16") == "bf16"
    with pytest.raises(UsageError, match="`precision` must be fp32, bf16 or fp16, got 'fp64'."):
        check_precision("fp64")
    assert check_interpolation("lanczos") == "lanczos"
    with pytest.raises(UsageError, match=r"`kind` must be one of \['bicubic', 'lanczos'\], got 'nearest'."):
        check_interpolation("nearest")
    assert check_degradation("modality") == "modality"
    with pytest.raises(UsageError, match="`degradation` must be one of bicubic, modality, got 'x'."):
        check_degradation("x")
    assert check_modality_or_auto("auto", "row 1") is None and check_modality_or_auto(" CT ", "row 1") == "ct"
    with pytest.raises(UsageError, match="row 1: modality must be auto, xray, ct, mr; got 'pet'."):
        check_modality_or_auto("pet", "row 1")
