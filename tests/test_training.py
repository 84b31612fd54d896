"""SR trainer (pixel and adversarial phases) and the checkpoint helpers the bundles use."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Events

from medsr.errors import UsageError
from medsr.losses import GeneratorLoss, PerceptualLoss, PixelLoss
from medsr.networks import EDSR, SRGANDiscriminator
from medsr.training import SRTrainer, export_weights, latest_checkpoint, load_pretrained
from medsr.transforms import CropBorderd


def _loader(n: int = 2):
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(n, 2, 1, 16, 16, generator=g)
    lr = torch.nn.functional.avg_pool2d(hr.flatten(0, 1), 2).view(n, 2, 1, 8, 8)
    return [{"lr": lr[i], "hr": hr[i]} for i in range(n)]


def _params(m: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()]).clone()


def test_pixel_phase_then_adversarial_phase() -> None:
    torch.manual_seed(0)
    gen = EDSR(num_features=8, num_blocks=1)
    disc = SRGANDiscriminator(num_features=8, num_levels=2, max_features=16, hidden_features=16, norm=None)
    trainer = SRTrainer(
        "cpu", 1, _loader(4), gen, torch.optim.Adam(gen.parameters(), 1e-3), PixelLoss("l1"),
        discriminator=disc, d_optimizer=torch.optim.Adam(disc.parameters(), 1e-3),
        generator_loss=GeneratorLoss(adversarial="relativistic", content=PerceptualLoss(feature_extractor=disc.forward_features)),
        pretrain_iterations=2,
    )
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append((dict(e.state.output[0]), _params(disc))))  # decollated, loss replicated
    d0 = _params(disc)
    trainer.run()
    (first, d1), (second, d2), (third, d3), (fourth, d4) = outputs
    assert "d_loss" not in first and "d_loss" not in second  # pre-training: pixel loss only
    assert torch.equal(d0, d1) and torch.equal(d1, d2)  # discriminator untouched while pre-training
    assert {"d_loss", "adversarial_loss", "content_loss", "pixel_loss"} <= set(third)
    assert not torch.equal(d2, d3)  # then it trains
    assert all(math.isfinite(o["loss"]) for o, _ in outputs)


def test_discriminator_needs_its_optimizer_and_loss() -> None:
    gen = EDSR(num_features=8, num_blocks=1)
    with pytest.raises(UsageError, match="d_optimizer"):
        SRTrainer("cpu", 1, _loader(), gen, torch.optim.SGD(gen.parameters(), 0.1), PixelLoss(), discriminator=SRGANDiscriminator())


def test_crop_border_and_clamp() -> None:
    d = CropBorderd(["pred"], border=2)({"pred": torch.full((1, 10, 12), 1.5)})
    assert d["pred"].shape == (1, 6, 8) and float(d["pred"].max()) == 1.0


def test_load_pretrained_copies_matching_tensors(tmp_path: Path) -> None:
    x2 = EDSR(scale_factor=2, num_features=8, num_blocks=2)
    torch.save(x2.state_dict(), tmp_path / "model.pt")
    x4 = load_pretrained(EDSR(scale_factor=4, num_features=8, num_blocks=2), tmp_path / "model.pt")
    torch.testing.assert_close(x4.head.weight, x2.head.weight)
    assert load_pretrained(x4, None) is x4 and load_pretrained(x4, tmp_path / "missing.pt") is x4


def test_export_weights_unwraps_and_is_weights_only(tmp_path: Path) -> None:
    net = EDSR(num_features=8, num_blocks=1)
    ckpt = tmp_path / "checkpoint_epoch=1.pt"
    torch.save({"model": {f"module.{k}": v for k, v in net.state_dict().items()}, "trainer": {"epoch": 1}}, ckpt)
    out = export_weights(ckpt, tmp_path / "models" / "model.pt")
    state = torch.load(out, weights_only=True)
    EDSR(num_features=8, num_blocks=1).load_state_dict(state)
    assert not [p for p in (tmp_path / "models").iterdir() if p.name != "model.pt"]  # no temp file left
    assert export_weights(tmp_path / "none.pt", tmp_path / "x.pt") is None


def test_latest_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for i in (1, 2):
        (tmp_path / f"checkpoint_epoch={i}.pt").write_bytes(b"x")
        os.utime(tmp_path / f"checkpoint_epoch={i}.pt", (time.time() + i, time.time() + i))
    assert latest_checkpoint(tmp_path).endswith("checkpoint_epoch=2.pt")
