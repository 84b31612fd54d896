"""SSIM loss (1 - SSIM) with the Gaussian-window convention of Wang et al. 2004."""

from __future__ import annotations

import torch
from monai.losses import SSIMLoss as _MonaiSSIMLoss
from torch import nn

from medsr.errors import UsageError
from medsr.validation import check_choice, check_spatial_dims

__all__ = ["SSIMLoss"]


class SSIMLoss(nn.Module):
    """``1 - SSIM`` with an 11x11 (11^3 in 3D) Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.

    Wang et al., 2004, "Image Quality Assessment: From Error Visibility to
    Structural Similarity", IEEE TIP 13(4), https://doi.org/10.1109/TIP.2003.819861.
    A thin wrapper around ``monai.losses.SSIMLoss`` with medsr's metric convention
    (docs/metrics.md). Border handling: MONAI filters without padding and
    averages SSIM over the valid region; scikit-image filters with reflect
    padding and then crops ``(win_size - 1) // 2`` pixels before averaging, i.e.
    the same region, so both agree to float precision (tested to 1e-3). Each
    image's SSIM is averaged over channels and pixels, then ``reduction`` is
    applied over the batch.

    Args:
        spatial_dims: 2 or 3. Defaults to 2.
        data_range: value range of the images. Defaults to 1.0.
        win_size: Gaussian window size. Defaults to 11.
        sigma: Gaussian standard deviation. Defaults to 1.5.
        k1: luminance constant. Defaults to 0.01.
        k2: contrast constant. Defaults to 0.03.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per image). Defaults to ``"mean"``.

    Example::

        loss = SSIMLoss(spatial_dims=2)(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        data_range: float = 1.0,
        win_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.win_size = win_size
        check_choice("reduction", reduction, ("mean", "sum", "none"))
        self.ssim = _MonaiSSIMLoss(
            spatial_dims,
            data_range=data_range,
            win_size=win_size,
            kernel_sigma=sigma,
            k1=k1,
            k2=k2,
            reduction=reduction,
        )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return ``1 - SSIM(input, target)``; both ``(N, C, *spatial)`` with every spatial size >= ``win_size``."""
        if input.ndim != self.spatial_dims + 2 or input.shape != target.shape:
            raise UsageError(
                f"`input` and `target` must have the same shape (N, C, *spatial) with {self.spatial_dims} spatial "
                f"dims, got {tuple(input.shape)} and {tuple(target.shape)}. Pass matching batches."
            )
        if min(input.shape[2:]) < self.win_size:
            raise UsageError(
                f"SSIM needs every spatial size >= win_size ({self.win_size}), got {tuple(input.shape[2:])}. "
                "Use larger patches or a smaller `win_size`."
            )
        loss = self.ssim(input, target)
        return loss.flatten() if loss.ndim > 0 else loss
