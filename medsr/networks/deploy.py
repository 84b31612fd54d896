"""Exact deployment rewrites of a trained network, and the walkers that apply them (timm's ``fuse`` pattern).

A block that knows how to rewrite itself for inference says so with methods:

- ``fold()`` (in place): fold what it can into its own convolutions (batch norms,
  residual scaling); :class:`~medsr.networks.blocks.ResidualBlock`;
- ``fuse()``: return a module computing the same thing in fewer oneDNN calls
  (or itself); :class:`~medsr.networks.blocks.ResidualBlock`;
- ``fold_into(next_module)``: move work past the module that consumes its output
  and return that module's replacement (or None);
  :class:`~medsr.networks.blocks.Upsampler` moves its last pixel shuffle after the tail
  convolution.

The walkers here (:func:`fold_network`, :func:`fold_pixel_shuffles`,
:func:`fuse_network`) know no network by name: they call those methods and
rewrite the generic patterns (a convolution followed by a batch norm or an
activation in an ``nn.Sequential``). Every rewrite gives the same outputs up to
float rounding; ``medsr.inference.prepare_network`` checks that on a probe before
it keeps one.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = [
    "fold_bn",
    "fusable_conv",
    "onednn_act",
    "FusedConv",
    "FusedResidual",
    "sub_pixel_conv",
    "fold_network",
    "fold_pixel_shuffles",
    "fuse_network",
    "onednn_available",
]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


# --------------------------------------------------------------------------- folds


@torch.no_grad()
def fold_bn(conv: nn.Module, bn: nn.Module) -> bool:
    """Fold an eval-mode batch norm into the convolution before it (in place); False if not foldable.

    ``BN(W x + b) = (g W / s) x + (g (b - m) / s + beta)``.
    """
    if not (isinstance(conv, _CONVS) and isinstance(bn, _BATCH_NORMS)) or bn.running_mean is None:
        return False
    weight, bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    conv.weight = weight
    conv.bias = bias
    return True


def sub_pixel_conv(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """The LR convolution that, followed by ``PixelShuffle(r)``, equals ``conv`` applied after ``PixelShuffle(r)``.

    HR pixel ``(r*Y + p, r*X + q)`` of ``conv(shuffle(u))`` reads HR neighbours
    ``r*Y + p + dy``, i.e. LR pixel ``Y + (p + dy) // r``, sub-pixel ``(p + dy) % r``,
    channel ``c*r*r + i*r + j`` of ``u``. Gathering ``conv``'s taps by that map gives
    an LR kernel of radius ``ceil(h / r)`` (3 x 3 for EDSR's 3 x 3 tail at x2) whose
    ``C_out * r * r`` outputs are the sub-pixels, in pixel-shuffle order. Zero
    padding agrees: an HR pixel is outside the image exactly when its LR pixel is.
    Exact up to float rounding; the shuffle then moves ``C_out * r * r`` channels
    instead of ``C * r * r`` (4 instead of 128 for EDSR-M x2).
    """
    w, b = conv.weight.detach(), conv.bias
    c_out, c_hr, k, _ = w.shape
    h = k // 2
    radius = -(-h // r)
    lr = nn.Conv2d(c_hr * r * r, c_out * r * r, 2 * radius + 1, padding=radius, bias=True)
    weight = torch.zeros_like(lr.weight)
    channels = torch.arange(c_hr) * r * r
    for p in range(r):
        for q in range(r):
            rows = torch.arange(c_out) * r * r + p * r + q
            for dy in range(-h, h + 1):
                for dx in range(-h, h + 1):
                    i, ly = (p + dy) % r, (p + dy) // r
                    j, lx = (q + dx) % r, (q + dx) // r
                    weight[rows[:, None], (channels + i * r + j)[None, :], ly + radius, lx + radius] += w[:, :, dy + h, dx + h]
    with torch.no_grad():
        lr.weight.copy_(weight)
        lr.bias.copy_((b.detach() if b is not None else torch.zeros(c_out)).repeat_interleave(r * r))
    return lr.to(w.device, w.dtype)


def fold_network(net: nn.Module) -> nn.Module:
    """Fold, in place, every batch norm that follows a convolution in an ``nn.Sequential``, and call ``fold()``
    on every module that has one (residual blocks: their batch norms and residual scaling); returns ``net``."""
    for module in list(net.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                if fold_bn(module._modules[a], module._modules[b]):
                    module._modules[b] = nn.Identity()
        if callable(getattr(type(module), "fold", None)):
            module.fold()
    return net


def fold_pixel_shuffles(net: nn.Module) -> int:
    """Call ``fold_into(next)`` on every child that has it, ``next`` being the sibling registered right after it
    (the module that consumes its output: EDSR's ``upsample -> tail``); in place, returns how many were folded.

    Registration order is taken as data flow; ``medsr.inference.prepare_network`` keeps
    the result only if a probe gives the same outputs.
    """
    folds = 0
    for parent in list(net.modules()):
        children = list(parent.named_children())
        for (_, child), (next_name, nxt) in zip(children, children[1:]):
            if not callable(getattr(type(child), "fold_into", None)):
                continue
            replacement = child.fold_into(nxt)
            if replacement is not None:
                setattr(parent, next_name, replacement)
                folds += 1
    return folds


# --------------------------------------------------------------------------- oneDNN fusion


class _PackCache:
    """Holds a oneDNN-prepacked weight; copies start empty (opaque oneDNN tensors cannot be copied or pickled)."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __deepcopy__(self, memo: dict) -> _PackCache:
        return _PackCache()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.value = None


def fusable_conv(m: nn.Module) -> bool:
    """Whether ``m`` is a plain float32 CPU ``nn.Conv2d`` with zero padding (what :class:`FusedConv` runs)."""
    return (
        type(m) is nn.Conv2d
        and m.padding_mode == "zeros"
        and isinstance(m.padding, tuple)
        and m.weight.dtype == torch.float32
        and m.weight.device.type == "cpu"
    )


def onednn_act(m: nn.Module) -> tuple[str, list[float]] | None:
    """oneDNN's post-op name and scalars for activation ``m`` (ReLU, LeakyReLU), or None."""
    if type(m) is nn.ReLU:
        return "relu", []
    if type(m) is nn.LeakyReLU:
        return "leaky_relu", [float(m.negative_slope)]
    return None


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's pointwise-fused convolution."""
    return bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


class FusedConv(nn.Module):
    """``act(conv(x))`` (or ``conv(x) + other``) as one oneDNN call with a prepacked weight.

    What ``torch.compile`` generates on CPU, without compiling: the activation
    and the residual addition run as oneDNN post-ops, and the weight is reordered
    once into oneDNN's blocked layout instead of on every call. Exact: the same
    arithmetic. Falls back to the wrapped modules off CPU, under autocast, with
    gradients, or for non-float32 inputs.
    """

    def __init__(self, conv: nn.Conv2d, act: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = conv
        self.act = act if act is not None else nn.Identity()
        self.attr, self.scalars = onednn_act(act) if act is not None else ("none", [])
        self._pack = _PackCache()

    def fast(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.dim() == 4
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
        )

    def _weight(self) -> torch.Tensor:
        if self._pack.value is None:
            c = self.conv
            self._pack.value = torch.ops.mkldnn._reorder_convolution_weight(
                c.weight.detach(), list(c.padding), list(c.stride), list(c.dilation), c.groups, None
            )
        return self._pack.value

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv
        if not self.fast(x):
            y = self.act(c(x))
            return y if other is None else y + other
        bias = None if c.bias is None else c.bias.detach()
        geometry = (list(c.padding), list(c.stride), list(c.dilation), c.groups)
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, self._weight(), bias, *geometry, self.attr, self.scalars, "")
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, self._weight(), bias, *geometry, "add", None, None, [], None
        )


class FusedResidual(nn.Module):
    """``x + second(first(x))`` as two oneDNN calls (the addition a post-op of the second); ``block(x)`` otherwise.

    Args:
        block: the original residual block (run when the fast path does not apply).
        first: the fused first convolution with its activation.
        second: the fused second convolution.
    """

    def __init__(self, block: nn.Module, first: FusedConv, second: FusedConv) -> None:
        super().__init__()
        self.block = block
        self.first = first
        self.second = second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.first.fast(x):
            return self.block(x)
        return self.second(self.first(x), other=x)


def _walk_unfused(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` and its descendants, not entering modules that are already fused."""
    yield module
    for child in module.children():
        if not isinstance(child, (FusedConv, FusedResidual)):
            yield from _walk_unfused(child)


def fuse_network(net: nn.Module) -> nn.Module:
    """Rewrite 2D convolutions as :class:`FusedConv` (with a following ReLU / LeakyReLU in an ``nn.Sequential``),
    after replacing every child that has a ``fuse()`` method by what it returns (residual blocks: two calls each);
    in place, returns ``net``. Nothing changes without oneDNN."""
    if not onednn_available():
        return net
    for parent in list(_walk_unfused(net)):  # blocks that fuse themselves first
        for name, child in list(parent.named_children()):
            if callable(getattr(type(child), "fuse", None)):
                fused = child.fuse()
                if fused is not child:
                    setattr(parent, name, fused)
    for parent in list(_walk_unfused(net)):  # then every other convolution, with its activation when one follows
        children = list(parent.named_children())
        for i, (name, child) in enumerate(children):
            if not fusable_conv(child):
                continue
            nxt = children[i + 1] if i + 1 < len(children) else None
            if isinstance(parent, nn.Sequential) and nxt is not None and onednn_act(nxt[1]) is not None:
                setattr(parent, name, FusedConv(child, nxt[1]))
                setattr(parent, nxt[0], nn.Identity())
            else:
                setattr(parent, name, FusedConv(child))
    return net
