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
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointLoader as _MonaiCheckpointLoader
from monai.handlers import CheckpointSaver as _MonaiCheckpointSaver

from medsr.errors import UsageError
from medsr.inference.bundles import load_weights, unwrap_checkpoint
from medsr.io import atomic_path

__all__ = [
    "SRTrainer",
    "prepare_sr_batch",
    "load_pretrained",
    "seed_everything",
    "distributed_backend",
    "init_distributed",
    "local_device",
    "latest_checkpoint",
    "export_weights",
    "epoch_seed",
    "DeterministicEpochs",
    "CheckpointSaver",
    "CheckpointLoader",
    "publish_weights",
]


def prepare_sr_batch(batchdata: Mapping[str, Any], device: Any = None, non_blocking: bool = False, **kwargs: Any):
    """``(lr, hr)`` from a batch dict with keys ``lr`` and ``hr`` (MONAI ``prepare_batch`` protocol)."""
    lr = batchdata["lr"].to(device=device, non_blocking=non_blocking)
    hr = batchdata["hr"].to(device=device, non_blocking=non_blocking)
    return lr, hr


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
        fake = engine.inferer(lr, engine.network)
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
        # as MONAI's SupervisedTrainer: MODEL_COMPLETED decollates the output into per-item dicts (``loss``
        # replicated), which MONAI's handlers expect (from_engine(["loss"], first=True), MLFlowHandler)
        engine.state.output = out
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def load_pretrained(network: torch.nn.Module, path: str | os.PathLike | None) -> torch.nn.Module:
    """Copy every tensor of a weights-only checkpoint whose name and shape match (e.g. x2 body -> x4 model).

    A missing ``path`` (or ``None``) leaves the network as initialised, so a
    config can always reference it.
    """
    if not path or not os.path.isfile(path):
        return network
    state = unwrap_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
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



def _complete_checkpoint(path: Path) -> bool:
    """False for a ``torch.save`` zip cut short (its central directory, written last, is missing or unreadable).

    Files that are not zip archives (the legacy ``torch.save`` format) are not judged here.
    """
    import zipfile

    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                return True
        with zipfile.ZipFile(path) as zf:
            return bool(zf.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def latest_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete ``checkpoint_*.pt`` MONAI's ``CheckpointSaver`` left in ``output_dir`` (for resuming), or ``None``.

    A checkpoint cut short (a run killed while writing one with a non-atomic saver) is skipped,
    so the run resumes from the previous one instead of failing to load.
    """
    files = sorted(Path(output_dir).glob("checkpoint_*.pt"), key=lambda p: p.stat().st_mtime)
    for path in reversed(files):
        if _complete_checkpoint(path):
            return str(path)
    return None


def export_weights(checkpoint: str | os.PathLike | None, target: str | os.PathLike) -> str | None:
    """Write the network weights of ``checkpoint`` to ``target`` atomically (the run folder's ``model*.pt``).

    ``None`` or a missing file (no checkpoint written yet) exports nothing and returns ``None``.
    """

    if not checkpoint or not os.path.isfile(checkpoint):
        return None
    state = unwrap_checkpoint(torch.load(checkpoint, map_location="cpu", weights_only=True))
    state = {k.removeprefix("module."): v.contiguous() for k, v in state.items()}
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    with atomic_path(Path(target)) as tmp:
        torch.save(state, tmp)
    return str(target)


def epoch_seed(seed: int, epoch: int) -> int:
    """The 32-bit seed of ``epoch`` of a run seeded with ``seed`` (NumPy ``SeedSequence``: well mixed, stable)."""
    return int(np.random.SeedSequence([int(seed) % 2**32, int(epoch) % 2**32]).generate_state(1)[0])


class DeterministicEpochs:
    """Reseed every random source of a training run from ``(seed, epoch)`` when each epoch starts.

    An epoch then draws the same patches, augmentations and degradations whether the run
    went straight through or was killed and resumed from the checkpoint of an earlier
    epoch (MONAI's ``CheckpointLoader`` restores weights, optimiser, scheduler and the
    trainer's epoch counter). No random-generator object is stored, so checkpoints stay
    loadable with ``torch.load(weights_only=True)``.

    Reseeded at ``EPOCH_STARTED``: Python's ``random``, NumPy's and torch's global
    generators, the data loader's ``generator`` (it seeds worker processes) and its
    sampler's ``generator`` (created when ``None``; samplers with ``set_epoch``, such as
    distributed ones, already derive their order from the epoch and are left alone),
    and every MONAI ``Randomizable`` transform of the loader's dataset (``set_rnd``).
    Attach it before the handlers that draw random numbers at ``EPOCH_STARTED``.

    Resuming is exact on CPU with ``num_workers=0``; with worker processes the order of
    the batches is the same, and each worker's transforms are seeded by MONAI's
    ``worker_init_fn`` from the reseeded loader generator.

    Args:
        seed: the run's seed (use a different one per rank under DDP, e.g. ``seed + rank``).
        loader: the training data loader; default the engine's ``data_loader`` (MONAI workflows), else the
            data ignite's ``run`` was given.

    Example (bundle ``train#handler_list``)::

        {"_target_": "medsr.training.DeterministicEpochs", "seed": "$@seed + @rank"}
    """

    def __init__(self, seed: int, loader: Any = None) -> None:
        self.seed = int(seed)
        self.loader = loader

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Any) -> None:
        from monai.data.utils import set_rnd

        s = epoch_seed(self.seed, engine.state.epoch)
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)
        loader = self.loader
        if loader is None:  # a MONAI workflow's loader, else what ignite's run() was given
            loader = getattr(engine, "data_loader", None) or getattr(engine.state, "dataloader", None)
        if loader is None:
            return
        if isinstance(loader, torch.utils.data.DataLoader):
            if loader.generator is None:
                loader.generator = torch.Generator()
            loader.generator.manual_seed(s)
        sampler = getattr(loader, "sampler", None)
        if sampler is not None and not hasattr(sampler, "set_epoch") and hasattr(sampler, "generator"):
            if sampler.generator is None:
                sampler.generator = torch.Generator()
            sampler.generator.manual_seed((s + 1) % 2**63)
        dataset = getattr(loader, "dataset", None)
        if dataset is not None:
            set_rnd(dataset, (s + 2) % 2**32)


class CheckpointSaver(_MonaiCheckpointSaver):
    """MONAI's ``CheckpointSaver`` writing every file atomically: a temporary file in ``save_dir``,
    renamed into place once complete (MONAI writes in place, so a run killed mid-save leaves a
    truncated checkpoint). Same arguments as ``monai.handlers.CheckpointSaver``, plus:

    Args:
        engine_key: also save the engine the handler is attached to under this key (e.g.
            ``"trainer"``, for resuming). A bundle's trainer lists its handlers
            (``train#handlers``), so a handler cannot reference the trainer in its
            ``save_dict`` without a circular reference: it is added when attached instead.
    """

    def __init__(self, *args: Any, engine_key: str | None = None, **kwargs: Any) -> None:
        self.engine_key = engine_key
        super().__init__(*args, **kwargs)
        for ckpt in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if ckpt is None:
                continue
            saver = ckpt.save_handler
            if not hasattr(saver, "_atomic"):  # pragma: no cover - an ignite without the atomic DiskSaver
                raise RuntimeError("ignite's DiskSaver has no atomic mode; update pytorch-ignite.")
            saver._atomic = True  # ignite: temp file + os.replace, then group/other read permission

    def attach(self, engine: Any) -> None:
        if self.engine_key:  # ignite's Checkpoint objects hold this same dict
            self.save_dict[self.engine_key] = engine
        super().attach(engine)


class CheckpointLoader(_MonaiCheckpointLoader):
    """MONAI's ``CheckpointLoader`` (``torch.load(weights_only=True)``) that can also restore the engine it is
    attached to, under ``engine_key`` (e.g. ``"trainer"``: epoch and iteration counters for resuming), without
    the config referencing the trainer from inside ``train#handlers``. Same other arguments as MONAI's.
    """

    def __init__(self, *args: Any, engine_key: str | None = None, **kwargs: Any) -> None:
        self.engine_key = engine_key
        super().__init__(*args, **kwargs)

    def attach(self, engine: Any) -> None:
        if self.engine_key:
            self.load_dict[self.engine_key] = engine
        super().attach(engine)


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def publish_weights(network: torch.nn.Module, source: str | os.PathLike, target: str | os.PathLike) -> str:
    """Replace a bundle's shipped weights (``models/model*.pt``) with a training run's, explicitly and logged.

    Training writes its weights to its run folder only; this is the one step that changes
    ``models/``. ``source`` must load strictly into ``network`` (the bundle's ``network_def``)
    with ``weights_only=True``; the new file is written atomically and the replacement is logged
    with both SHA-256 checksums. Bundle command (from the bundle folder)::

        python -m monai.bundle run publish --meta_file configs/metadata.json \\
            --config_file configs/train.json --logging_file configs/logging.conf [--scale 4]

    Returns:
        ``target`` as a string.
    """
    import logging


    source, target = Path(source), Path(target)
    if not source.is_file():
        raise UsageError(
            f"publish_weights: `source` {source} does not exist; train first (it is the run folder's exported weights)."
        )
    load_weights(network, source, name="publish_weights")  # refuses weights that do not fit the bundle's network
    state = {k: v.contiguous() for k, v in network.state_dict().items()}
    old = _sha256(target) if target.is_file() else "none"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    logging.getLogger("medsr.training").warning(
        "publish_weights: replaced shipped weights %s (sha256 %s) with %s (sha256 %s)",
        target, old, source, _sha256(target),
    )
    return str(target)
