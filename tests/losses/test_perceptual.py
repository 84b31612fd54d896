from __future__ import annotations

import pytest
import torch
from torch import nn

from medsr.errors import UsageError
from medsr.losses import VGG19_LAYERS, FeatureLoss, PerceptualLoss, build_vgg19_features
from medsr.networks import SRGANDiscriminator

LAYERS = ("relu1_2", "relu2_1")  # a tiny slice of VGG19: 3 convolutions


@pytest.fixture
def vgg_path(tmp_path):
    """A fake VGG19 state dict (random weights, torchvision key layout) for the first layers only."""
    torch.manual_seed(0)
    features = build_vgg19_features(VGG19_LAYERS.index("relu2_1") + 1)
    path = tmp_path / "vgg19_features.pt"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def test_layer_names_follow_torchvision_indices():
    assert len(VGG19_LAYERS) == 37
    assert VGG19_LAYERS.index("relu2_2") == 8
    assert VGG19_LAYERS.index("conv5_4") == 34 and VGG19_LAYERS.index("relu5_4") == 35
    assert len(build_vgg19_features()) == 37


def test_vgg_loads_with_weights_only(vgg_path, monkeypatch):
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loss = PerceptualLoss(weights_path=vgg_path, layers=LAYERS)
    assert calls and all(c.get("weights_only") is True for c in calls)
    state = original(vgg_path, weights_only=True)
    torch.testing.assert_close(loss.vgg[0].weight, state["features.0.weight"])
    assert not any(p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 3, 16, 16), (1, 1, 3, 16, 16)])
def test_vgg_loss_zero_for_identical_and_gradients(vgg_path, shape):
    loss = PerceptualLoss(weights_path=vgg_path, layers=LAYERS, layer_weights=(0.5, 1.0))
    x = torch.rand(shape)
    assert loss(x, x).item() == 0.0
    pred = torch.rand(shape, requires_grad=True)
    value = loss(pred, x)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_grey_input_is_repeated_to_rgb(vgg_path):
    loss = PerceptualLoss(weights_path=vgg_path, layers=LAYERS)
    grey = torch.rand(1, 1, 16, 16)
    for a, b in zip(loss.features(grey), loss.features(grey.repeat(1, 3, 1, 1)), strict=True):
        torch.testing.assert_close(a, b)


def test_vgg_stays_in_eval_mode(vgg_path):
    loss = PerceptualLoss(weights_path=vgg_path, layers=LAYERS).train()
    assert loss.training and not loss.vgg.training


def test_feature_matching_with_discriminator():
    disc = SRGANDiscriminator(2, num_features=4, num_levels=2, hidden_features=8)
    loss = FeatureLoss(feature_extractor=disc.forward_features)
    assert list(loss.parameters()) == []  # the discriminator stays the discriminator's
    x = torch.rand(2, 1, 16, 16)
    disc.eval()
    assert loss(x, x).item() == 0.0
    pred = torch.rand(2, 1, 16, 16, requires_grad=True)
    value = loss(pred, x)
    assert value.item() > 0
    value.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    pairs = zip(disc.forward_features(pred), disc.forward_features(x), strict=True)
    expected = sum(nn.functional.l1_loss(f, r) for f, r in pairs) / 2
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_bad_weights_files(tmp_path, vgg_path):
    with pytest.raises(UsageError, match="not found"):
        PerceptualLoss(weights_path=tmp_path / "missing.pt")
    with pytest.raises(UsageError, match="missing"):
        PerceptualLoss(weights_path=vgg_path, layers=("relu3_1",))  # file holds fewer layers
    pickled_module = tmp_path / "module.pt"
    torch.save(nn.Conv2d(3, 64, 3), pickled_module)
    with pytest.raises(UsageError, match="weights_only"):
        PerceptualLoss(weights_path=pickled_module, layers=LAYERS)
    wrong_shapes = tmp_path / "wrong.pt"
    torch.save({"0.weight": torch.zeros(64, 1, 3, 3), "0.bias": torch.zeros(64)}, wrong_shapes)
    with pytest.raises(UsageError):
        PerceptualLoss(weights_path=wrong_shapes, layers=("relu1_1",))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"weights_path": "x.pt", "feature_extractor": lambda x: [x]},
        {"feature_extractor": lambda x: [x], "criterion": "l3"},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(UsageError):
        PerceptualLoss(**kwargs)


def test_bad_layers(vgg_path):
    with pytest.raises(UsageError, match="layers"):
        PerceptualLoss(weights_path=vgg_path, layers=("relu9_9",))
    with pytest.raises(UsageError, match="layer_weights"):
        PerceptualLoss(weights_path=vgg_path, layers=LAYERS, layer_weights=(1.0,))
    with pytest.raises(UsageError, match="1 or 3"):
        PerceptualLoss(weights_path=vgg_path, layers=LAYERS)(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8))
