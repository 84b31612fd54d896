#!/usr/bin/env python
"""Quantisation and structured pruning of EDSR-M x2: speed and held-out PSNR loss, in one run.

Variants of the shipped EDSR-M x2 network, each against the fp32 network on the
same images and the same threads:

- **int8 dynamic**: PyTorch ``quantize_dynamic`` (it covers Linear/LSTM layers only,
  EDSR-M has none, so it is reported as not applicable) and ONNX Runtime
  ``quantize_dynamic`` (ConvInteger, activations quantised per call);
- **int8 static**: ONNX Runtime ``quantize_static`` (QDQ, per-channel weights,
  calibrated on the sample images, never on the held-out ones), run by ONNX
  Runtime and by OpenVINO (which executes QDQ graphs with int8 kernels);
- **structured pruning**: the residual blocks' inner channels with the smallest
  L1 norm removed (25 % and 50 %), no fine-tuning, run by PyTorch (medsr's engine).

PSNR follows docs/metrics.md ([0, 1] normalised images, border of 2 cropped) on
the held-out split of the training sources (``scripts/heldout_validation.py``,
needs ``../shared/data``; centre crops of 256 x 256 to bound the run time),
classic protocol (bicubic LR). Speed: interleaved best of ``--repeat`` on a
512 x 512 radiograph. Writes ``benchmarks/compress.json`` and the table between
the ``<!-- compress:begin -->`` / ``<!-- compress:end -->`` markers of docs/performance.md.

    python benchmarks/bench_compress.py               # pip install "medsr[bench]"
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_upscale import (  # noqa: E402
    CR, CT_SLICE, CXR_PNG, bundle_network, interleaved, log, machine, psnr, realistic_image, table, write_doc,
)

from medsr.inference import NetworkUpscaler, configure_threads  # noqa: E402
from medsr.ov_engine import _export_onnx  # noqa: E402

ADOPT_DB = 0.05
"""Largest mean held-out PSNR loss (dB) for which a variant would be offered behind an option."""


def heldout_images(crop: int, per_class: int, tmp: Path) -> list[tuple[str, torch.Tensor]]:
    """Normalised HR centre crops of the held-out split (radiographs and CT/MR slices)."""
    from heldout_validation import build

    from medsr.io import load_image
    from medsr.transforms import ModalityNormalize

    entries = json.loads(build(tmp / "heldout", per_class=per_class).read_text())  # a list of rows
    out = []
    for e in entries:
        img = ModalityNormalize()(load_image(e["image"], modality=e.get("modality"))).as_tensor()
        img = img[..., 0] if img.ndim == 4 else img
        if min(img.shape[1:]) < crop:
            continue
        cx, cy = img.shape[1] // 2, img.shape[2] // 2
        out.append((f"{e.get('modality', '?')} {Path(str(e['image'])).name}",
                    img[:, cx - crop // 2 : cx + crop // 2, cy - crop // 2 : cy + crop // 2].contiguous()))
    return out


def prune_blocks(net: nn.Module, fraction: float) -> nn.Module:
    """A copy of EDSR with each residual block's inner channels of smallest L1 norm (conv1 filters) removed."""
    from medsr.networks.blocks import ResidualBlock

    net = copy.deepcopy(net).eval()
    for m in net.modules():
        if type(m) is ResidualBlock and isinstance(m.conv1, nn.Conv2d) and isinstance(m.norm1, nn.Identity):
            c1, c2 = m.conv1, m.conv2
            keep_n = max(1, round(c1.out_channels * (1 - fraction)))
            keep = c1.weight.detach().abs().sum(dim=(1, 2, 3)).argsort(descending=True)[:keep_n].sort().values
            n1 = nn.Conv2d(c1.in_channels, keep_n, c1.kernel_size, padding=c1.padding, bias=c1.bias is not None)
            n2 = nn.Conv2d(keep_n, c2.out_channels, c2.kernel_size, padding=c2.padding, bias=c2.bias is not None)
            with torch.no_grad():
                n1.weight.copy_(c1.weight[keep])
                if c1.bias is not None:
                    n1.bias.copy_(c1.bias[keep])
                n2.weight.copy_(c2.weight[:, keep])
                if c2.bias is not None:
                    n2.bias.copy_(c2.bias)
            m.conv1, m.conv2 = n1, n2
    return net


class Calibration:
    """ONNX Runtime calibration reader: LR crops of the sample images (not the held-out set)."""

    def __init__(self, crop: int = 128) -> None:
        from medsr.io import load_image
        from medsr.transforms import BicubicDegradation, ModalityNormalize

        self.items = []
        for path in (CR, CXR_PNG, CT_SLICE):
            x = ModalityNormalize()(load_image(path)).as_tensor()
            x = x[..., 0] if x.ndim == 4 else x
            for k in range(3):
                a, b = (x.shape[1] - crop) * (k + 1) // 4, (x.shape[2] - crop) * (k + 1) // 4
                hr = x[:, a : a + crop, b : b + crop]
                lr = BicubicDegradation(2)(hr)
                lr = lr.as_tensor() if hasattr(lr, "as_tensor") else lr
                self.items.append({"lr": lr[None].numpy().astype(np.float32)})
        self._it = iter(self.items)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.items)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "compress.json")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--per-class", type=int, default=3, help="held-out radiographs per finding class")
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args(argv)
    import onnxruntime as ort
    import openvino as ov
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from medsr.transforms import BicubicDegradation

    threads = configure_threads()
    res: dict[str, Any] = {"command": "python benchmarks/bench_compress.py", "machine": machine()}
    net, _, weights = bundle_network("edsr_m", 2)
    with tempfile.TemporaryDirectory(prefix="medsr_compress_") as tmpdir:
        tmp = Path(tmpdir)
        images = heldout_images(args.crop, args.per_class, tmp)
        log(f"{len(images)} held-out images")
        fp32 = tmp / "fp32.onnx"
        _export_onnx(net, 1, fp32)
        prep = tmp / "fp32_prep.onnx"
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(fp32), str(prep), skip_symbolic_shape=True)
        dyn, sta, sta_ends = tmp / "int8_dynamic.onnx", tmp / "int8_static.onnx", tmp / "int8_static_ends.onnx"
        quantize_dynamic(str(prep), str(dyn), weight_type=QuantType.QInt8)
        quantize_static(str(prep), str(sta), Calibration(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        import onnx

        convs = [n.name for n in onnx.load(str(prep)).graph.node if n.op_type == "Conv"]
        # the usual remedy for SR networks: the 1-channel head and the sub-pixel tail stay in float
        quantize_static(str(prep), str(sta_ends), Calibration(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=[convs[0], *convs[-2:]])

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        core = ov.Core()

        def ort_fn(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            return lambda x: torch.from_numpy(sess.run(None, {"lr": x[None].numpy()})[0][0])

        def ov_fn(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
            cm = core.compile_model(core.read_model(str(path)), "CPU", {
                "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
            req = cm.create_infer_request()
            return lambda x: torch.from_numpy(np.array(req.infer({0: x[None].numpy()})[0][0]))

        q_dyn_torch = torch.ao.quantization.quantize_dynamic(copy.deepcopy(net), {nn.Linear}, dtype=torch.qint8)
        n_linear = sum(1 for m in q_dyn_torch.modules() if "quantized" in type(m).__module__)
        variants: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
            "fp32 (medsr, default engine)": ("fp32", NetworkUpscaler(net, 2, tile=4096)),
            "fp32 ONNX Runtime": ("peer", ort_fn(fp32)),
            "int8 dynamic, ONNX Runtime": ("int8 dynamic", ort_fn(dyn)),
            "int8 static (QDQ), ONNX Runtime": ("int8 static", ort_fn(sta)),
            "int8 static (QDQ), OpenVINO": ("int8 static", ov_fn(sta)),
            "int8 static (QDQ), head + tail convs in fp32, OpenVINO": ("int8 static", ov_fn(sta_ends)),
        }
        for frac in (0.25, 0.5):
            pruned = prune_blocks(net, frac)
            variants[f"pruned {int(frac * 100)}% (block inner channels), no fine-tuning"] = (
                "structured pruning", NetworkUpscaler(pruned, 2, tile=4096))
        # accuracy: mean held-out PSNR, classic protocol
        lrs = []
        for _, hr in images:
            lr = BicubicDegradation(2)(hr)
            lrs.append(lr.as_tensor() if hasattr(lr, "as_tensor") else lr)
        psnrs: dict[str, float] = {}
        for k, (_, fn) in variants.items():
            vals = [psnr(fn(lr).clamp(0, 1), hr, 2) for lr, (_, hr) in zip(lrs, images)]
            psnrs[k] = float(np.mean(vals))
            log(f"{k}: PSNR {psnrs[k]:.3f}")
        # speed: interleaved on a 512 x 512 radiograph
        x = realistic_image(512, seed=1)
        best = interleaved({k: (lambda fn=fn: fn(x)) for k, (_, fn) in variants.items()}, args.repeat)
        ref = "fp32 (medsr, default engine)"
        rows, out = [], {}
        for k, (kind, _) in variants.items():
            loss = psnrs[ref] - psnrs[k]
            out[k] = {"kind": kind, "s_512": round(best[k], 4), "speedup_vs_medsr_fp32": round(best[ref] / best[k], 3),
                      "psnr_db": round(psnrs[k], 3), "psnr_loss_db": round(loss, 3),
                      "adopt": bool(kind not in ("fp32", "peer") and loss <= ADOPT_DB)}
            rows.append([k, f"{best[k]:.3f}", f"{best[ref] / best[k]:.2f}x", f"{psnrs[k]:.3f}",
                         "—" if k == ref else f"{loss:+.3f}",
                         "reference" if k == ref else "peer" if kind == "peer" else ("yes" if loss <= ADOPT_DB else "no")])
        res.update({"weights": weights, "threads": threads, "heldout_images": [n for n, _ in images], "crop": args.crop,
                    "pytorch_dynamic_int8_layers": n_linear, "variants": out})
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    m = res["machine"]
    text = "\n".join([
        f"Measured {m['date']} on {m['cpu']} ({m['isa']}), {threads} threads, load average {m['load_avg_1min']}; "
        f"command `{res['command']}`. EDSR-M x2, {weights} weights; PSNR: mean over {len(images)} held-out images "
        f"({args.crop}x{args.crop} centre crops, classic protocol); time: 512x512 input, interleaved best of {args.repeat}.",
        "",
        table(rows, ["variant", "s (512^2)", "speed-up vs medsr fp32", "held-out PSNR dB", "loss dB",
                     f"adopt (loss <= {ADOPT_DB} dB)"]),
        "",
        f"PyTorch's `quantize_dynamic` quantises Linear/LSTM layers only: on EDSR-M, whose layers are all "
        f"convolutions, it changed {n_linear} layers, so it is not a lever here.",
    ])
    if not args.no_doc:
        doc = args.doc.read_text()
        begin, end = "<!-- compress:begin -->", "<!-- compress:end -->"
        if begin not in doc:
            args.doc.write_text(doc.rstrip("\n") + f"\n\n## Quantisation and pruning (EDSR-M)\n\n{begin}\n{end}\n")
        write_doc(args.doc, text, begin, end)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
