"""medsr's exact tiler as a MONAI ``Inferer``, and the pieces a bundle's ``inference.json`` is built from.

:class:`TiledInferer` is :class:`medsr.inference.NetworkUpscaler` (halo-cropped
tiles, exact for local networks; blended tiles for networks with a global
operation; batching and memory budget) behind MONAI's ``Inferer`` protocol,
``inferer(inputs, network)``, so MONAI engines (``SupervisedEvaluator``), the
bundle workflow properties and MONAI Deploy's bundle operator can run it.

The bundles' inference workflow (``configs/inference.json``) is

    :func:`inference_datalist` (files, series, folders -> ``{"image", "output"}``)
    -> ``LoadImaged(reader=MedsrReader)`` + ``ModalityNormalized`` (preprocessing)
    -> :class:`TiledInferer` -> :class:`SaveUpscaledd` (postprocessing: new geometry
    and derivation, exact inverse normalisation, derived image written in the
    input's format),

and every step is the function ``medsr upscale -m <bundle>`` runs
(:func:`medsr.inference.upscale_path`): the same reader, normalisation, tiler,
inverse and writer, so the two give byte-identical files (tests/inference/test_inferers.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.inferers import Inferer
from monai.transforms import MapTransform
from torch import nn

from medsr.batch import discover, plan_outputs
from medsr.errors import UsageError
from medsr.inference.pipeline import derived_image, to_physical
from medsr.inference.upscalers import NetworkUpscaler
from medsr.validation import check_scale
from medsr.io import save_image
from medsr.typing import PathLike

__all__ = ["TiledInferer", "inference_datalist", "SaveUpscaledd"]


def _weights_version(net: nn.Module) -> tuple[tuple[int, int], ...]:
    """Identity and in-place version counter of every parameter and buffer: changes when weights are loaded or stepped."""
    return tuple((id(t), t._version) for t in list(net.parameters()) + list(net.buffers()))


class TiledInferer(Inferer):
    """MONAI ``Inferer`` running an SR network with medsr's exact, memory-bounded tiler.

    ``inferer(inputs, network)`` maps a batch ``(N, C, *spatial)`` in [0, 1] to
    ``(N, C, *spatial * scale)`` in-plane (a 2D network upscales a ``(N, C, X, Y, Z)``
    volume slice by slice). The network is rewritten once into a fast inference copy
    (:func:`medsr.inference.prepare_network`); the copy is rebuilt whenever the
    network's weights change (a ``CheckpointLoader`` after construction, training
    steps), so it never runs stale weights.

    Args:
        scale: the network's in-plane factor (2 or 4).
        name: what derived images and reports call the model.
        is_gan: whether the network was trained adversarially.
        options: ``spatial_dims``, ``device``, ``tile``, ``halo``, ``batch_size``, ``precision``, ``blend``,
            ``overlap``, ``memory_budget``: as :class:`medsr.inference.NetworkUpscaler`.

    Example::

        inferer = TiledInferer(scale=2, tile=128)
        sr = inferer(torch.rand(1, 1, 300, 260), net)  # (1, 1, 600, 520), equal to net(x)
    """

    def __init__(self, scale: int, *, name: str = "network", is_gan: bool = False, **options: Any) -> None:
        super().__init__()
        self.scale = check_scale(scale)
        self.name = name
        self.is_gan = bool(is_gan)
        known = set(inspect.signature(NetworkUpscaler.__init__).parameters) - {"self", "net", "scale", "name", "is_gan"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(f"TiledInferer: unknown option(s) {unknown}; use {sorted(known)} (NetworkUpscaler's).")
        self.options = options
        self._upscaler: Any = None
        self._key: tuple[int, tuple[tuple[int, int], ...]] | None = None

    def upscaler(self, network: nn.Module) -> Any:
        """The :class:`~medsr.inference.NetworkUpscaler` for ``network``'s current weights (built once per weights)."""
        if not isinstance(network, nn.Module):
            raise UsageError(f"`network` must be a torch.nn.Module, got {type(network).__name__}.")
        key = (id(network), _weights_version(network))
        if self._upscaler is None or key != self._key:
            self._upscaler = NetworkUpscaler(
                network, self.scale, name=self.name, is_gan=self.is_gan, **self.options
            )
            self._key = key
        return self._upscaler

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        if args or kwargs:
            raise UsageError("TiledInferer takes no extra network arguments; call it as inferer(inputs, network).")
        if not isinstance(inputs, torch.Tensor) or inputs.ndim < 4:
            shape = tuple(getattr(inputs, "shape", ()))
            raise UsageError(f"`inputs` must be a batch (N, C, *spatial), got shape {shape}; add the batch axis.")
        up = self.upscaler(network)
        data = inputs.as_tensor() if hasattr(inputs, "as_tensor") else inputs
        return torch.stack([up(x) for x in data]).to(inputs.device)


def inference_datalist(dataset_dir: PathLike, output_dir: PathLike, scale: int, tag: str = "sr") -> list[dict[str, Any]]:
    """``[{"image": file, or a series' files, "output": where its upscaled image goes}, ...]`` for everything
    under ``dataset_dir`` (a file, a series folder or a folder tree), named as ``medsr upscale`` names outputs."""
    src, dst = Path(dataset_dir), Path(output_dir)
    items = discover(src, dst)
    outputs = plan_outputs(items, src, dst, scale, tag)
    return [
        {"image": [str(f) for f in item.files] if item.kind == "series" else str(item.path), "output": str(out)}
        for item, out in zip(items, outputs)
    ]


class SaveUpscaledd(MapTransform):
    """Postprocessing of an upscaled prediction: geometry, derivation, exact inverse normalisation, writing.

    ``d[keys]`` (the network output, normalised) becomes a MetaTensor with the upscaled
    geometry of ``d[ref_key]`` (the normalised input) and the derivation of ``inferer``,
    is mapped back to physical units with the input's recorded mapping, and is written
    in the input's format to ``d[output_key]`` (:func:`medsr.io.save_image`, atomic).

    Args:
        keys: prediction key(s), usually ``"pred"``.
        inferer: the :class:`TiledInferer` (its ``name`` and ``scale`` go into the derivation).
        ref_key: the normalised input image.
        output_key: the output path of each item (see :func:`inference_datalist`).
        overwrite: replace existing outputs (never an input).
    """

    def __init__(
        self,
        keys: KeysCollection,
        inferer: TiledInferer,
        ref_key: str = "image",
        output_key: str = "output",
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.inferer = inferer
        self.ref_key = ref_key
        self.output_key = output_key
        self.overwrite = bool(overwrite)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if self.output_key not in d:
                raise UsageError(f"SaveUpscaledd: item has no {self.output_key!r} path; build it with inference_datalist.")
            pred = d[key]
            pred = pred.as_tensor() if hasattr(pred, "as_tensor") else pred
            out = to_physical(derived_image(d[self.ref_key], pred.detach().cpu(), self.inferer))
            d[key] = out
            save_image(out, d[self.output_key], overwrite=self.overwrite)
        return d

