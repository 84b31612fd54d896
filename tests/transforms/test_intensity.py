"""Tests for medsr.transforms.intensity: per-modality mapping to [0, 1] and its exact inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.data.utils import list_data_collate

from medsr import meta as M
from medsr.errors import UsageError
from medsr.transforms import (
    InvertModalityNormalize,
    InvertModalityNormalized,
    ModalityNormalize,
    ModalityNormalized,
)


def _mt(data: torch.Tensor, **meta: object) -> MetaTensor:
    return MetaTensor(data, meta=dict(meta))


def test_ct_window_round_trip_including_values_outside() -> None:
    hu = torch.tensor([[[-3024.0, -2000.0, -1024.0, -1000.0, 0.0, 40.0, 1000.0, 3071.0, 8000.0]]])
    img = _mt(hu, **{M.MODALITY: "CT"})
    y = ModalityNormalize()(img)
    assert y.dtype == torch.float32
    assert (y.meta[M.NORM_METHOD], y.meta[M.NORM_LOW], y.meta[M.NORM_HIGH]) == ("window", -1024.0, 3071.0)
    assert y.meta[M.MODALITY] == "ct"
    assert float(y[0, 0, 2]) == 0.0 and float(y[0, 0, 7]) == 1.0
    assert y.min() < 0 and y.max() > 1  # clip=False by default keeps the inverse exact
    back = InvertModalityNormalize()(y)
    torch.testing.assert_close(back.as_tensor(), hu, atol=1e-3, rtol=0)
    assert M.NORM_LOW not in back.meta and M.NORM_METHOD not in back.meta
    exact = InvertModalityNormalize(dtype=torch.float64)(ModalityNormalize(dtype=torch.float64)(img))
    torch.testing.assert_close(exact.as_tensor(), hu.double(), atol=1e-9, rtol=0)


def test_ct_clip_and_custom_window() -> None:
    hu = torch.tensor([[[-2000.0, -160.0, 40.0, 240.0, 3000.0]]])
    y = ModalityNormalize(modality="ct", ct_window=(-160, 240), clip=True)(hu)
    torch.testing.assert_close(y.as_tensor(), torch.tensor([[[0.0, 0.0, 0.5, 1.0, 1.0]]]))
    back = InvertModalityNormalize()(y)
    torch.testing.assert_close(back[0, 0, 1:4].as_tensor(), hu[0, 0, 1:4])  # inside the window: exact


def test_mr_percentiles(gen: torch.Generator) -> None:
    x = torch.rand(1, 24, 24, 8, generator=gen) * 900.0 + 50.0
    img = _mt(x, **{M.MODALITY: "mr"})
    y = ModalityNormalize()(img)
    lo, hi = np.percentile(x.numpy(), [0.5, 99.5])
    assert y.meta[M.NORM_METHOD] == "percentile"
    assert y.meta[M.NORM_LOW] == pytest.approx(lo, rel=1e-6)
    assert y.meta[M.NORM_HIGH] == pytest.approx(hi, rel=1e-6)
    frac_below = float((y < 0).float().mean())
    assert 0.002 < frac_below < 0.008  # ~0.5 % below 0, ~0.5 % above 1
    torch.testing.assert_close(InvertModalityNormalize()(y).as_tensor(), x, atol=1e-3, rtol=0)
    y2 = ModalityNormalize(percentiles=(1, 99))(img)
    assert y2.meta[M.NORM_LOW] > y.meta[M.NORM_LOW]


def test_xray_bits_stored() -> None:
    x = torch.tensor([[[0.0, 100.0, 2048.0, 4095.0]]])
    y = ModalityNormalize()(_mt(x, **{M.MODALITY: "DX", M.BITS_STORED: 12}))
    assert (y.meta[M.NORM_METHOD], y.meta[M.NORM_LOW], y.meta[M.NORM_HIGH]) == ("bits", 0.0, 4095.0)
    assert y.meta[M.MODALITY] == "xray"
    torch.testing.assert_close(y.as_tensor(), x / 4095.0)
    torch.testing.assert_close(InvertModalityNormalize()(y).as_tensor(), x, atol=1e-3, rtol=0)
    # numpy / tensor bit depths in meta (e.g. after a reader) work too
    y8 = ModalityNormalize()(_mt(torch.tensor([[[0.0, 255.0]]]), modality="xray", bits_stored=np.int64(8)))
    assert y8.meta[M.NORM_HIGH] == 255.0


@pytest.mark.parametrize(
    "values", [[-10.0, 100.0, 2000.0, 4095.0], [0.0, 100.0, 5000.0, 9000.0]], ids=["signed", "after-lut"]
)
def test_xray_falls_back_to_percentiles_outside_bit_range(values: list[float]) -> None:
    x = torch.tensor([[values]])
    y = ModalityNormalize()(_mt(x, **{M.MODALITY: "xray", M.BITS_STORED: 12}))
    assert y.meta[M.NORM_METHOD] == "percentile"
    torch.testing.assert_close(InvertModalityNormalize()(y).as_tensor(), x, atol=1e-3, rtol=0)


def test_xray_without_bits_uses_percentiles(gen: torch.Generator) -> None:
    x = torch.rand(1, 32, 32, generator=gen) * 1000
    y = ModalityNormalize(modality="xray")(x)
    assert y.meta[M.NORM_METHOD] == "percentile"


@pytest.mark.parametrize("modality", ["ct", "mr", "xray"])
def test_constant_image_does_not_divide_by_zero(modality: str) -> None:
    x = torch.full((1, 8, 8), 7.0)
    y = ModalityNormalize(modality=modality)(x)
    assert torch.isfinite(y).all()
    assert y.meta[M.NORM_HIGH] > y.meta[M.NORM_LOW]
    torch.testing.assert_close(InvertModalityNormalize()(y).as_tensor(), x, atol=1e-4, rtol=0)


def test_plain_inputs_and_explicit_inverse() -> None:
    arr = np.array([[[-1024.0, 3071.0]]], dtype=np.float32)
    y = ModalityNormalize(modality="ct")(arr)
    np.testing.assert_allclose(np.asarray(y), [[[0.0, 1.0]]])
    method, low, high, modality = ModalityNormalize(modality="ct").mapping(arr)
    assert (method, low, high, modality) == ("window", -1024.0, 3071.0, "ct")
    back = InvertModalityNormalize(low=-1024.0, high=3071.0)(torch.tensor([[[0.0, 0.25, 1.0]]]))
    torch.testing.assert_close(torch.as_tensor(back), torch.tensor([[[-1024.0, -0.25, 3071.0]]]))


def test_explicit_modality_wins_over_meta() -> None:
    y = ModalityNormalize(modality="ct")(_mt(torch.zeros(1, 2, 2), **{M.MODALITY: "mr"}))
    assert y.meta[M.NORM_METHOD] == "window" and y.meta[M.MODALITY] == "ct"


@pytest.mark.parametrize(
    "make",
    [
        lambda: ModalityNormalize()(torch.zeros(1, 4, 4)),  # plain tensor, no modality
        lambda: ModalityNormalize()(_mt(torch.zeros(1, 4, 4), **{M.MODALITY: "other"})),
        lambda: ModalityNormalize(modality="pet"),
        lambda: ModalityNormalize(modality="ct", ct_window=(100, -100)),
        lambda: ModalityNormalize(modality="mr", percentiles=(99, 1)),
        lambda: InvertModalityNormalize()(torch.zeros(1, 4, 4)),
        lambda: InvertModalityNormalize(low=0.0),
    ],
)
def test_usage_errors(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError):
        make()


def test_error_message_names_argument_and_fix() -> None:
    with pytest.raises(UsageError, match=r"modality=.*\('xray', 'ct', 'mr'\)"):
        ModalityNormalize()(torch.zeros(1, 4, 4))


def test_batched_inverse_uses_per_sample_mapping() -> None:
    a = ModalityNormalize()(_mt(torch.tensor([[[0.0, 10.0, 20.0]]]), modality="xray", bits_stored=8))
    b = ModalityNormalize()(_mt(torch.tensor([[[0.0, 1000.0, 4095.0]]]), modality="xray", bits_stored=12))
    batch = list_data_collate([a, b])
    back = InvertModalityNormalize()(batch)
    torch.testing.assert_close(back[0].as_tensor(), torch.tensor([[[0.0, 10.0, 20.0]]]), atol=1e-3, rtol=0)
    torch.testing.assert_close(back[1].as_tensor(), torch.tensor([[[0.0, 1000.0, 4095.0]]]), atol=1e-3, rtol=0)


def test_dictionary_versions() -> None:
    hu = torch.tensor([[[-1024.0, 0.0, 500.0]]])
    d = {"img": _mt(hu.clone(), **{M.MODALITY: "ct"}), "label": 1}
    out = ModalityNormalized(keys="img")(d)
    assert out["label"] == 1 and out["img"].meta[M.NORM_METHOD] == "window"
    back = InvertModalityNormalized(keys="img")(out)
    torch.testing.assert_close(back["img"].as_tensor(), hu, atol=1e-3, rtol=0)
    explicit = InvertModalityNormalized(keys=["img"], low=0.0, high=2.0)({"img": torch.ones(1, 2, 2)})
    torch.testing.assert_close(torch.as_tensor(explicit["img"]), torch.full((1, 2, 2), 2.0))
    assert "x" not in ModalityNormalized(keys="x", modality="ct", allow_missing_keys=True)({})
