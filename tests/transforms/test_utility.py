"""medsr.transforms.utility: the volume layout and edge-weight maps of the training pipeline."""

from __future__ import annotations

import torch

from medsr.transforms import AsVolume, AsVolumed, EdgeWeight, EdgeWeightd


def test_as_volume_adds_a_slice_axis_to_2d_only() -> None:
    assert tuple(AsVolume()(torch.zeros(1, 4, 5)).shape) == (1, 4, 5, 1)
    assert tuple(AsVolume()(torch.zeros(1, 4, 5, 3)).shape) == (1, 4, 5, 3)
    d = AsVolumed(["a", "b"])({"a": torch.zeros(1, 4, 5), "b": torch.zeros(1, 4, 5, 2)})
    assert tuple(d["a"].shape) == (1, 4, 5, 1) and tuple(d["b"].shape) == (1, 4, 5, 2)


def test_edge_weight_is_larger_on_edges_and_never_zero() -> None:
    img = torch.zeros(1, 16, 16, 1)
    img[:, 8:] = 1.0
    w = EdgeWeight(floor=0.25)(img)
    assert w.dtype == torch.float16 and w.shape == img.shape
    assert float(w[0, 8, 4, 0]) > float(w[0, 2, 4, 0]) > 0
    d = EdgeWeightd("image", w_key="weight")({"image": img})
    torch.testing.assert_close(d["weight"], w)
    assert d["image"] is img
