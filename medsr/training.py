"""Training engine pieces the bundles' ``train.json`` reference: an SR (GAN-capable) trainer and helpers.

:class:`SRTrainer` is MONAI's ``SupervisedTrainer`` with the SR iteration:
pixel loss only while ``iteration <= pretrain_iterations`` (or when there is no
discriminator), then the generator loss ``alpha * pixel + beta * adversarial +
gamma * content`` with a discriminator step per iteration; gradients are
clipped. Everything else (handlers, validation, checkpoints, TensorBoard,
resuming) is MONAI's.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.engines import SupervisedTrainer
from monai.transforms import MapTransform

from medsr.errors import UsageError

__all__ = [
    "SRTrainer",
    "prepare_sr_batch",
    "CropBorderd",
    "load_pretrained",
    "seed_everything",
    "distributed_backend",
    "init_distributed",
    "local_device",
    "latest_checkpoint",
    "export_weights",
]


def prepare_sr_batch(batchdata: Mapping[str, Any], device: Any = None, non_blocking: bool = False, **kwargs: Any):
    """``(lr, hr)`` from a batch dict with keys ``lr`` and ``hr`` (MONAI ``prepare_batch`` protocol)."""
    lr = batchdata["lr"].to(device=device, non_blocking=non_blocking)
    hr = batchdata["hr"].to(device=device, non_blocking=non_blocking)
    return lr, hr


class CropBorderd(MapTransform):
    """Crop ``border`` pixels from every spatial edge (the metric convention: border = scale) and clamp to [0, 1]."""

    def __init__(self, keys: KeysCollection, border: int, clamp: bool = True) -> None:
        super().__init__(keys)
        self.border = int(border)
        self.clamp = clamp

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        b = self.border
        for key in self.key_iterator(d):
            x = d[key]
            if b:
                x = x[(slice(None),) + (slice(b, -b),) * (x.ndim - 1)]
            d[key] = x.clamp(0.0, 1.0) if self.clamp else x
        return d


class SRTrainer(SupervisedTrainer):
    """Supervised trainer for SR generators, adversarial when given a discriminator.

    Args:
        device, max_epochs, train_data_loader, network, optimizer: as ``SupervisedTrainer``.
        loss_function: the pixel loss (e.g. ``medsr.losses.PixelLoss("l1")``).
        discriminator: ``None`` for pixel-only training.
        d_optimizer: the discriminator's optimizer.
        adversarial_loss: object with ``generator_loss(real, fake)`` and ``discriminator_loss(real, fake)``.
        content_loss: ``callable(fake, real) -> loss`` (perceptual or feature matching); ``None`` for none.
        alpha, beta, gamma: weights of pixel, adversarial and content losses.
        pretrain_iterations: pixel-only iterations before the adversarial phase.
        grad_clip: max gradient norm for both networks (``0`` disables).
        kwargs: passed to ``SupervisedTrainer`` (``epoch_length``, ``train_handlers``...).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_function: Callable,
        *,
        discriminator: torch.nn.Module | None = None,
        d_optimizer: torch.optim.Optimizer | None = None,
        adversarial_loss: Any = None,
        content_loss: Callable | None = None,
        alpha: float = 1.0,
        beta: float = 1e-3,
        gamma: float = 6e-3,
        pretrain_iterations: int = 0,
        grad_clip: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("prepare_batch", prepare_sr_batch)
        super().__init__(device, max_epochs, train_data_loader, network, optimizer, loss_function, **kwargs)
        if discriminator is not None and (d_optimizer is None or adversarial_loss is None):
            raise UsageError("`discriminator` needs `d_optimizer` and `adversarial_loss` too.")
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer
        self.adversarial_loss = adversarial_loss
        self.content_loss = content_loss
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.pretrain_iterations = int(pretrain_iterations)
        self.grad_clip = float(grad_clip)

    def _clip(self, module: torch.nn.Module) -> None:
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict[str, Any]:
        lr, hr = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        engine.network.train()
        fake = engine.network(lr)
        pixel = engine.loss_function(fake, hr)
        out: dict[str, Any] = {"image": lr, "label": hr, "pred": fake, "pixel_loss": float(pixel.detach())}
        adversarial_phase = self.discriminator is not None and engine.state.iteration > self.pretrain_iterations
        if adversarial_phase:
            disc = self.discriminator
            disc.train()
            # discriminator step on detached generator output
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss = self.adversarial_loss.discriminator_loss(disc(hr), disc(fake.detach()))
            d_loss.backward()
            self._clip(disc)
            self.d_optimizer.step()
            # generator step: the discriminator's weights are not updated by it
            for p in disc.parameters():
                p.requires_grad_(False)
            real_logits = disc(hr).detach()
            adv = self.adversarial_loss.generator_loss(real_logits, disc(fake))
            content = self.content_loss(fake, hr) if self.content_loss is not None else fake.new_zeros(())
            loss = self.alpha * pixel + self.beta * adv + self.gamma * content
            for p in disc.parameters():
                p.requires_grad_(True)
            out.update(d_loss=float(d_loss.detach()), adv_loss=float(adv.detach()), content_loss=float(content.detach()))
        else:
            loss = pixel
        engine.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._clip(engine.network)
        engine.optimizer.step()
        out["loss"] = loss.detach()
        out["pred"] = fake.detach()
        return out


def load_pretrained(network: torch.nn.Module, path: str | os.PathLike | None) -> torch.nn.Module:
    """Copy every tensor of a weights-only checkpoint whose name and shape match (e.g. x2 body -> x4 model).

    A missing ``path`` (or ``None``) leaves the network as initialised, so a
    config can always reference it.
    """
    if not path or not os.path.isfile(path):
        return network
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    own = network.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    own.update(matched)
    network.load_state_dict(own)
    return network


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy, torch and MONAI's global determinism switch; returns the seed."""
    from monai.utils import set_determinism

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    set_determinism(seed=seed)
    return seed


def distributed_backend() -> str:
    """``nccl`` on CUDA, ``gloo`` on CPU, so one ``multi_gpu_train.json`` runs on both."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def local_device() -> torch.device:
    """This process's device under torchrun (``cuda:LOCAL_RANK``, or CPU)."""
    if torch.cuda.is_available():
        rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(rank)
        return torch.device(f"cuda:{rank}")
    return torch.device("cpu")


def init_distributed() -> int:
    """Initialise the process group from torchrun's environment; returns this process's rank."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend=distributed_backend())
    return dist.get_rank()



def latest_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint_*.pt`` MONAI's ``CheckpointSaver`` left in ``output_dir`` (for resuming), or ``None``."""
    files = sorted(Path(output_dir).glob("checkpoint_*.pt"), key=lambda p: p.stat().st_mtime)
    return str(files[-1]) if files else None


def export_weights(checkpoint: str | os.PathLike, target: str | os.PathLike) -> str | None:
    """Write the network weights of ``checkpoint`` to ``target`` atomically (the bundle's ``models/model*.pt``)."""
    from medsr.io import atomic_path

    if not os.path.isfile(checkpoint):
        return None
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    state = {k.removeprefix("module."): v.contiguous() for k, v in state.items()}
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    with atomic_path(Path(target)) as tmp:
        torch.save(state, tmp)
    return str(target)
