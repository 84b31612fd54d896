"""Gradient (edge) loss: L1 between Sobel or finite-difference gradients, 2D and 3D."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medsr.errors import UsageError
from medsr.validation import check_choice, check_spatial_dims

__all__ = ["GradientLoss", "sobel_kernels"]


def sobel_kernels(spatial_dims: int) -> torch.Tensor:
    """Sobel kernels, one per axis, shape ``(spatial_dims, 1, 3, ..., 3)``.

    Along its axis a kernel is the central difference ``[-1, 0, 1] / 2``; along
    the others the smoothing ``[1, 2, 1] / 4``, so on a linear ramp of slope 1
    the response is exactly 1.
    """
    derivative = torch.tensor([-1.0, 0.0, 1.0]) / 2
    smoothing = torch.tensor([1.0, 2.0, 1.0]) / 4
    kernels = []
    for axis in range(spatial_dims):
        k = torch.ones((1,) * spatial_dims)
        for d in range(spatial_dims):
            v = derivative if d == axis else smoothing
            shape = [1] * spatial_dims
            shape[d] = 3
            k = k * v.reshape(shape)
        kernels.append(k)
    return torch.stack(kernels).unsqueeze(1)


class GradientLoss(nn.Module):
    """Mean absolute difference between the image gradients of prediction and target.

    Penalises blurred or displaced edges, which pixel losses under-weight. With
    ``kind="sobel"`` (default) gradients are Sobel responses along each axis
    (central difference, smoothed across); with ``"diff"`` plain forward
    differences. No padding: only the valid region is compared, so borders add
    no artefacts. Channels are treated independently.

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        kind: ``"sobel"`` or ``"diff"``. Defaults to ``"sobel"``.

    Example::

        loss = GradientLoss(spatial_dims=3)(torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8))
    """

    KINDS: tuple[str, ...] = ("sobel", "diff")

    def __init__(self, spatial_dims: int = 2, kind: str = "sobel") -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.kind = check_choice("kind", kind, self.KINDS)
        self.register_buffer("kernels", sobel_kernels(spatial_dims), persistent=False)

    def gradients(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-axis gradients of ``x`` ``(N, C, *spatial)``."""
        if self.kind == "diff":
            return [torch.diff(x, dim=2 + d) for d in range(self.spatial_dims)]
        flat = x.reshape(-1, 1, *x.shape[2:])
        conv = F.conv2d if self.spatial_dims == 2 else F.conv3d
        g = conv(flat, self.kernels.to(dtype=x.dtype))
        return [g[:, d] for d in range(self.spatial_dims)]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the mean over axes of the mean absolute gradient difference."""
        if input.ndim != self.spatial_dims + 2 or input.shape != target.shape or min(input.shape[2:]) < 3:
            raise UsageError(
                f"`input` and `target` must have the same shape (N, C, *spatial) with {self.spatial_dims} spatial "
                f"dims of size >= 3, got {tuple(input.shape)} and {tuple(target.shape)}. Pass matching batches."
            )
        diffs = [(a - b).abs().mean() for a, b in zip(self.gradients(input), self.gradients(target), strict=True)]
        return torch.stack(diffs).mean()
