"""Perceptual (VGG19 content) loss from local weights, or discriminator feature matching."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medsr.errors import UsageError
from medsr.validation import check_choice
from medsr.typing import PathLike

__all__ = ["FeatureLoss", "PerceptualLoss", "VGG19_LAYERS", "build_vgg19_features"]

_VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip


def _vgg19_layer_names() -> tuple[str, ...]:
    names: list[str] = []
    block, conv = 1, 1
    for v in _VGG19_CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return tuple(names)


VGG19_LAYERS: tuple[str, ...] = _vgg19_layer_names()
"""Names of VGG19's ``features`` layers in order (``conv1_1, relu1_1, ..., pool5``); the index of a
name is its index in torchvision's ``vgg19().features``, so its state-dict keys (``"0.weight"`` or
``"features.0.weight"``) load directly."""

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def build_vgg19_features(num_layers: int = len(VGG19_LAYERS)) -> nn.Sequential:
    """VGG19 ``features`` (Simonyan and Zisserman, 2015, https://arxiv.org/abs/1409.1556), first ``num_layers`` layers.

    Same layer order and indices as torchvision's ``vgg19().features`` (no
    torchvision needed); ReLUs are not in-place so pre-activation outputs can be read.

    Example::

        vgg = build_vgg19_features(VGG19_LAYERS.index("relu2_2") + 1)
    """
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            cin = int(v)
    return nn.Sequential(*layers[:num_layers])


def _load_vgg_state(path: PathLike, features: nn.Sequential) -> None:
    if not os.path.isfile(path):
        raise UsageError(
            f"`weights_path` must be an existing file with a VGG19 state dict, got {str(path)!r} (not found). "
            "Pass the path of a local VGG19 state dict; medsr never downloads weights."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise UsageError(
            f"`weights_path` must hold a plain state dict loadable with weights_only=True, got {str(path)!r} ({err}). "
            "Save it with torch.save(model.state_dict(), path)."
        ) from err
    if not isinstance(state, dict):
        raise UsageError(
            f"`weights_path` must hold a state dict (a dict of tensors), got a {type(state).__name__} "
            f"in {str(path)!r}. "
            "Save it with torch.save(model.state_dict(), path)."
        )
    wanted = set(features.state_dict())
    picked: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        short = key.split("features.", 1)[1] if "features." in key else key
        if short in wanted:
            picked[short] = value
    missing = sorted(wanted - set(picked))
    if missing:
        raise UsageError(
            f"`weights_path` {str(path)!r} must hold VGG19 `features` weights (keys like '0.weight' or "
            f"'features.0.weight'); missing {missing[:4]}{' ...' if len(missing) > 4 else ''}. "
            "Pass a torchvision-layout VGG19 state dict."
        )
    try:
        features.load_state_dict(picked, strict=True)
    except RuntimeError as err:
        raise UsageError(
            f"`weights_path` {str(path)!r} does not fit VGG19 `features` ({err}). Pass a VGG19 (not VGG16) state dict."
        ) from err


class PerceptualLoss(nn.Module):
    """Content loss on deep features: VGG19 features from a local state dict, or discriminator feature matching.

    - **VGG** (``weights_path`` given): the SRGAN content loss (Ledig et al., 2017,
      https://arxiv.org/abs/1609.04802) on VGG19 (Simonyan and Zisserman, 2015)
      features. VGG is built here (no torchvision) up to the deepest of
      ``layers`` and loaded with ``torch.load(weights_path, weights_only=True)``;
      nothing is ever downloaded. Inputs in [0, 1] with 1 channel are repeated
      to 3, then ImageNet-normalised; 3D volumes ``(N, C, D, H, W)`` are compared
      slice by slice along D. Default ``layers=("relu5_4",)`` with MSE is SRGAN's
      VGG5,4 loss (its 1/12.75 feature rescaling is the ``gamma=6e-3`` of
      :class:`GeneratorLoss`); ESRGAN prefers the pre-activation ``"conv5_4"`` with L1.
    - **Feature matching** (``feature_extractor`` given, e.g.
      ``SRGANDiscriminator.forward_features``): L1 between the discriminator's
      feature maps of the real (detached) and the super-resolved image
      (Salimans et al., 2016, https://arxiv.org/abs/1606.03498; Wang et al., 2018, pix2pixHD).
      The extractor is not registered as a submodule: its parameters stay the
      discriminator's.

    Exactly one of the two must be given. Frozen VGG weights get no gradients.

    Args:
        weights_path: local VGG19 state dict (torchvision layout), or None. Defaults to None.
        layers: VGG19 layer names (see ``VGG19_LAYERS``). Defaults to ``("relu5_4",)``.
        layer_weights: one weight per layer (VGG) or per feature map (feature matching);
            None averages them. Defaults to None.
        feature_extractor: callable returning a list of feature maps, or None. Defaults to None.
        criterion: ``"l1"`` or ``"l2"``; None picks ``"l2"`` for VGG (SRGAN) and ``"l1"``
            for feature matching. Defaults to None.

    Example::

        content = PerceptualLoss(weights_path="vgg19_features.pt", layers=("relu5_4",))
        matching = PerceptualLoss(feature_extractor=discriminator.forward_features)
        loss = content(sr, hr)
    """

    def __init__(
        self,
        weights_path: PathLike | None = None,
        layers: Sequence[str] = ("relu5_4",),
        layer_weights: Sequence[float] | None = None,
        feature_extractor: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
        criterion: str | None = None,
    ) -> None:
        super().__init__()
        if (weights_path is None) == (feature_extractor is None):
            raise UsageError(
                "`weights_path` or `feature_extractor` must be given (exactly one), got "
                f"weights_path={weights_path!r}, feature_extractor={feature_extractor!r}. Pass a local VGG19 "
                "state dict path, or a discriminator's `forward_features` for feature matching."
            )
        use_vgg = weights_path is not None
        self.criterion = check_choice("criterion", criterion or ("l2" if use_vgg else "l1"), ("l1", "l2"))
        self.layer_weights = None if layer_weights is None else [float(w) for w in layer_weights]
        self._extractor = feature_extractor
        self.vgg: nn.Sequential | None = None
        self.layer_indices: list[int] = []
        if use_vgg:
            if isinstance(layers, str) or not layers or any(name not in VGG19_LAYERS for name in layers):
                raise UsageError(
                    f"`layers` must be a non-empty sequence of VGG19 layer names such as ('relu5_4',), got {layers!r}. "
                    f"Pick from {', '.join(VGG19_LAYERS)}."
                )
            self.layer_indices = [VGG19_LAYERS.index(name) for name in layers]
            if self.layer_weights is not None and len(self.layer_weights) != len(self.layer_indices):
                raise UsageError(
                    f"`layer_weights` must have one weight per layer ({len(self.layer_indices)}), got "
                    f"{len(self.layer_weights)}. Pass as many weights as `layers`."
                )
            self.vgg = build_vgg19_features(max(self.layer_indices) + 1)
            _load_vgg_state(weights_path, self.vgg)  # type: ignore[arg-type]
            self.vgg.eval().requires_grad_(False)
            self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(_IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Set train mode; the VGG network stays in eval mode."""
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()
        return self

    def _vgg_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim == 5:  # (N, C, D, H, W) -> slices along D
            x = x.permute(0, 2, 1, 3, 4).reshape(-1, x.shape[1], x.shape[3], x.shape[4])
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise UsageError(
                f"VGG perceptual loss needs (N, 1 or 3, H, W) or (N, 1 or 3, D, H, W) images, got {tuple(x.shape)}. "
                "Pass single-channel (or RGB) images."
            )
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        feats: list[torch.Tensor] = []
        wanted = set(self.layer_indices)
        for i, layer in enumerate(self.vgg):  # type: ignore[arg-type]
            x = layer(x)
            if i in wanted:
                feats.append(x)
        order = sorted(wanted)
        return [feats[order.index(i)] for i in self.layer_indices]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps the loss compares."""
        return self._vgg_features(x) if self.vgg is not None else list(self._extractor(x))  # type: ignore[misc]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the (weighted) mean over feature maps of the L1/L2 distance, ``target`` features detached."""
        fake = self.features(input)
        with torch.no_grad():
            real = self.features(target)
        weights = self.layer_weights or [1.0 / len(fake)] * len(fake)
        if len(weights) != len(fake):
            raise UsageError(
                f"`layer_weights` must have one weight per feature map ({len(fake)}), got {len(weights)}. "
                "Match the number of maps the extractor returns."
            )
        dist = F.l1_loss if self.criterion == "l1" else F.mse_loss
        return torch.stack([w * dist(f, r.detach()) for w, f, r in zip(weights, fake, real, strict=True)]).sum()


FeatureLoss = PerceptualLoss
"""Alias of :class:`PerceptualLoss` (feature matching reads more naturally as a feature loss)."""
