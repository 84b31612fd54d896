"""medsr.inference, moved into a package: its code is in :mod:`medsr.inference.upscalers` until the split."""

from __future__ import annotations

from medsr.inference.upscalers import *  # noqa: F401,F403
from medsr.inference.upscalers import (  # noqa: F401  (names tests, benchmarks and slices import)
    __all__,
    _axis_tiles,
    _check_scale,
    _derived,
    _fold_shuffle_into_tail,
    _FusedConv,
    _normalise,
    _parse_bundle,
    _sub_pixel_tail,
    _to_physical,
    _upscale_normalised,
)
