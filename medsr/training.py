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
        loss_function: the pixel loss (e.g. ``medsr.losses.PixelLoss("l1")``), used alone
            without a discriminator and during the pre-training phase.
        discriminator: ``None`` for pixel-only training.
        d_optimizer: the discriminator's optimizer.
        generator_loss: a ``medsr.losses.GeneratorLoss`` (``alpha * pixel + beta * adversarial +
            gamma * content``) for the adversarial phase; its ``adversarial`` part also gives
            the discriminator loss.
        pretrain_iterations: pixel-only iterations before the adversarial phase.
        grad_clip: max gradient norm for both networks (``0`` disables).
        channels_last: train 2D networks in NHWC memory layout (much faster on CPU).
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
        generator_loss: Any = None,
        pretrain_iterations: int = 0,
        grad_clip: float = 1.0,
        channels_last: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("prepare_batch", prepare_sr_batch)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            # 2D convolutions run several times faster in NHWC on CPUs (oneDNN); exact same maths.
            network.to(memory_format=torch.channels_last)
            if discriminator is not None:
                discriminator.to(memory_format=torch.channels_last)
        super().__init__(device, max_epochs, train_data_loader, network, optimizer, loss_function, **kwargs)
        if discriminator is not None and (d_optimizer is None or generator_loss is None):
            raise UsageError("`discriminator` needs `d_optimizer` and `generator_loss` too.")
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer
        self.generator_loss = generator_loss
        self.pretrain_iterations = int(pretrain_iterations)
        self.grad_clip = float(grad_clip)

    def _clip(self, module: torch.nn.Module) -> None:
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)

    def _iteration(self, engine: Any, batchdata: dict[str, Any]) -> dict[str, Any]:
        lr, hr = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        if self.channels_last and lr.ndim == 4:
            lr = lr.contiguous(memory_format=torch.channels_last)
            hr = hr.contiguous(memory_format=torch.channels_last)
        engine.network.train()
        fake = engine.network(lr)
        out: dict[str, Any] = {"image": lr, "label": hr}
        if self.discriminator is not None and engine.state.iteration > self.pretrain_iterations:
            disc = self.discriminator.train()
            # discriminator step, on the detached generator output
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss = self.generator_loss.adversarial.discriminator_loss(disc(hr), disc(fake.detach()))
            d_loss.backward()
            self._clip(disc)
            self.d_optimizer.step()
            # generator step; the discriminator is frozen for it
            disc.requires_grad_(False)
            loss, parts = self.generator_loss(fake, hr, fake_logits=disc(fake), real_logits=disc(hr).detach())
            disc.requires_grad_(True)
            out.update({f"{k}_loss": float(v) for k, v in parts.items()}, d_loss=float(d_loss.detach()))
        else:
            loss = engine.loss_function(fake, hr)
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
