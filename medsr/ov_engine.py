"""OpenVINO as medsr's CPU engine: a network exported to ONNX once, compiled by OpenVINO, run on medsr's tiles.

OpenVINO is the fastest CPU runtime users would pick instead of medsr (the issue
measured it 6 % ahead of medsr's PyTorch path on EDSR-M on an AVX2 machine); on
the AVX-512/AMX machine measured in docs/performance.md neither engine is ahead
on every network and size, so PyTorch stays the default and this engine is opt-in
(``engine="openvino"``, or ``"auto"``: OpenVINO when installed). :class:`OpenVINONetwork` wraps
the compiled model as an ``nn.Module`` so that :class:`~medsr.inference.NetworkUpscaler`
keeps everything else (exact halo tiling, batching, memory budget, blending).

- **Exact.** Inference precision is pinned to f32 (OpenVINO would pick bf16 on CPUs
  with AMX); outputs match PyTorch to float rounding (measured max 1e-6 on [0, 1]).
- **Exported once.** The ONNX file is cached under :func:`cache_dir`, named by a
  hash of the architecture, the weights and the versions, and written atomically;
  OpenVINO's compiled blobs are cached beside it. A later run only reads it.
- **Optional.** ``pip install "medsr[openvino]"`` (OpenVINO and onnx, for the
  export). Without it medsr runs networks with PyTorch.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medsr._lazy import optional_module
from medsr.errors import UsageError
from medsr.inference.runtime import cache_dir
from medsr.io import atomic_path

__all__ = ["ENGINES", "available", "cache_dir", "resolve_engine", "OpenVINONetwork"]

ENGINES = ("auto", "torch", "openvino")
"""``engine`` values: ``auto`` (OpenVINO when installed and it applies, else PyTorch), ``torch``, ``openvino``."""

INSTALL_HINT = 'pip install "medsr[openvino]"'


def available() -> bool:
    """Whether OpenVINO and onnx (for the export) can be imported."""
    return optional_module("openvino") is not None and optional_module("onnx") is not None


def resolve_engine(engine: str, device: torch.device, precision: str, spatial_dims: int) -> str:
    """``"torch"`` or ``"openvino"`` for ``engine``; UsageError when OpenVINO was asked for and cannot apply."""
    if engine not in ENGINES:
        raise UsageError(f"`engine` must be one of {', '.join(ENGINES)}, got {engine!r}.")
    applies = device.type == "cpu" and precision == "fp32" and spatial_dims == 2
    if engine == "auto":
        return "openvino" if applies and available() else "torch"
    if engine == "openvino":
        if not applies:
            raise UsageError("`engine` openvino runs 2D networks on CPU in fp32; use --engine torch for "
                             f"device {device.type}, precision {precision}, {spatial_dims}D.")
        if not available():
            raise UsageError(f"`engine` openvino needs OpenVINO and onnx: {INSTALL_HINT}, or use --engine torch.")
    return engine


def _fingerprint(net: nn.Module, in_channels: int) -> str:
    """Hash of the architecture, the weights and the versions that shape the exported graph."""
    import openvino

    h = hashlib.sha256()
    h.update(f"{type(net).__module__}.{type(net).__qualname__}\n{net!r}\n{in_channels}\n".encode())
    h.update(f"torch {torch.__version__} openvino {openvino.__version__}\n".encode())
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def _export_onnx(net: nn.Module, in_channels: int, path: Path) -> None:
    """``net`` as ONNX with dynamic batch and spatial axes, written atomically to ``path``."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net, torch.rand(1, in_channels, 48, 48), buf, input_names=["lr"], output_names=["sr"],
            dynamic_axes={"lr": {0: "n", 2: "x", 3: "y"}, "sr": {0: "n", 2: "sx", 3: "sy"}},
            opset_version=17, dynamo=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


class OpenVINONetwork(nn.Module):
    """A 2D SR network compiled by OpenVINO (f32, latency hint), called like the module it was made from.

    Args:
        net: the network (``(N, C, X, Y)`` -> ``(N, C, sX, sY)``); it is exported in eval mode, not changed.
        in_channels: its input channels.
        threads: OpenVINO inference threads (default: PyTorch's intra-op threads).
        cache: folder for the exported ONNX file and OpenVINO's compiled blobs (default :func:`cache_dir`);
            when it cannot be written, a temporary folder is used for this process only.
    """

    def __init__(self, net: nn.Module, in_channels: int, *, threads: int | None = None, cache: Path | None = None) -> None:
        super().__init__()
        ov = optional_module("openvino")
        if ov is None or optional_module("onnx") is None:
            raise UsageError(f"OpenVINO and onnx are needed for the openvino engine: {INSTALL_HINT}.")
        net = net.eval()
        root = Path(cache) if cache is not None else cache_dir()
        path = root / "onnx" / f"{type(net).__name__}-{_fingerprint(net, in_channels)}.onnx"
        self._tmp: tempfile.TemporaryDirectory | None = None
        if not path.is_file():
            try:
                _export_onnx(net, in_channels, path)
            except OSError:  # read-only cache: export for this process only
                self._tmp = tempfile.TemporaryDirectory(prefix="medsr_ov_")
                root = Path(self._tmp.name)
                path = root / path.name
                _export_onnx(net, in_channels, path)
        self.onnx_path = path
        core = ov.Core()
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",  # exact: OpenVINO would pick bf16 on AMX CPUs
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
        }
        blobs = root / "openvino"
        try:
            blobs.mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(blobs)
        except OSError:
            pass
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self._request = self.compiled.create_infer_request()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise UsageError("the openvino engine is for inference only (no gradients); use engine='torch' to train.")
        arr = np.ascontiguousarray(x.detach().cpu().float().numpy())
        out = self._request.infer({0: arr}, share_inputs=False, share_outputs=False)[0]
        return torch.from_numpy(out)  # share_outputs=False: a copy that the request does not reuse
