"""medsr.evaluation: statistics helpers with known answers, grouping, case selection, the whole run."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medsr import evaluation as ev
from medsr.errors import InputError, UsageError


# --------------------------------------------------------------------------- fixtures
# The real medsr.io and medsr.transforms are used. While medsr/transforms/__init__.py is not
# written yet, its classes are taken from their modules; the networks are replaced by small
# upscalers (the shipped bundles are not needed to test the protocol).

TRANSFORMS = ("ModalityNormalize", "InvertModalityNormalize", "CropToMultiple", "BicubicDegradation", "RandModalityDegradation")


def install_transforms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``from medsr.transforms import X`` work for the names evaluation uses."""
    import importlib

    import medsr.transforms as package

    for name in TRANSFORMS:
        if hasattr(package, name):
            continue
        for sub in ("intensity", "degradation"):
            mod = importlib.import_module(f"medsr.transforms.{sub}")
            if hasattr(mod, name):
                monkeypatch.setattr(package, name, getattr(mod, name), raising=False)
                break
        else:
            pytest.skip(f"medsr.transforms has no {name} yet")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    install_transforms(monkeypatch)


def _inplane(x: torch.Tensor, factor: float) -> torch.Tensor:
    t = torch.as_tensor(x).float()
    t = t.as_tensor() if hasattr(t, "as_tensor") else t
    planes = t.permute(3, 0, 1, 2) if t.ndim == 4 else t[None]
    out = F.interpolate(planes, scale_factor=factor, mode="bicubic", align_corners=False, antialias=factor < 1)
    return out.permute(1, 2, 3, 0) if t.ndim == 4 else out[0]


class FakeUpscaler:
    """bicubic (torch), ``sharp`` (bicubic + unsharp mask) or ``gan`` (sharp + seeded texture)."""

    def __init__(self, name: str, scale: int) -> None:
        self.name, self.scale, self.is_gan = name, scale, name == "gan"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        up = _inplane(x, self.scale)
        if self.name in ("sharp", "gan"):
            blur = _inplane(_inplane(up, 0.5), 2.0)[:, : up.shape[1], : up.shape[2]]
            up = up + 0.6 * (up - blur)
        if self.name == "gan":
            g = torch.Generator().manual_seed(0)
            up = up + 0.03 * torch.randn(up.shape, generator=g)
        return up.clamp(0, 1)


def fake_factory(name: str, scale: int) -> FakeUpscaler:
    if name not in ("bicubic", "sharp", "gan"):
        raise UsageError(f"unknown model {name!r}")
    return FakeUpscaler(name, scale)


def write_png(path: Path, seed: int = 0, size: tuple[int, int] = (64, 64)) -> Path:
    """A smooth 8-bit 'radiograph' with some edges."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.random(size[::-1]), 3)
    img = (img - img.min()) / (img.max() - img.min())
    img[size[1] // 3 : size[1] // 2, size[0] // 4 : size[0] // 2] += 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img / 1.5, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def write_volume(path: Path, shape: tuple[int, int, int] = (40, 36, 6)) -> Path:
    import nibabel as nib
    from scipy.ndimage import gaussian_filter

    vol = gaussian_filter(np.random.default_rng(0).random(shape), (3, 3, 1)) * 1000
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(vol.astype(np.int16), np.diag([1.0, 1.0, 3.0, 1.0])), str(path))
    return path


# --------------------------------------------------------------------------- statistics


def test_bootstrap_ci_normal_mean_and_width() -> None:
    rng = np.random.default_rng(42)
    n, mu, sd = 400, 0.5, 1.0
    d = rng.normal(mu, sd, n)
    lo, hi = ev.bootstrap_ci(d, n_resamples=4000, confidence=0.95, seed=1)
    assert lo < mu < hi
    assert lo < d.mean() < hi
    analytic = 3.92 * d.std(ddof=1) / math.sqrt(n)
    assert hi - lo == pytest.approx(analytic, rel=0.1)


def test_bootstrap_ci_coverage_is_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    trials = 200
    for t in range(trials):
        d = rng.normal(1.0, 2.0, 60)
        lo, hi = ev.bootstrap_ci(d, n_resamples=1000, seed=t)
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_ci_is_seeded_and_handles_degenerate_input() -> None:
    d = np.random.default_rng(0).normal(size=30)
    assert ev.bootstrap_ci(d, seed=3) == ev.bootstrap_ci(d, seed=3)
    assert ev.bootstrap_ci(np.zeros(10)) == (0.0, 0.0)
    assert all(math.isnan(v) for v in ev.bootstrap_ci([1.0]))
    assert all(math.isnan(v) for v in ev.bootstrap_ci([1.0, math.nan]))
    with pytest.raises(UsageError, match="confidence"):
        ev.bootstrap_ci(d, confidence=95)
    with pytest.raises(UsageError, match="n_resamples"):
        ev.bootstrap_ci(d, n_resamples=0)


def test_paired_wilcoxon_known_answers() -> None:
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(0)
    a = rng.normal(30, 2, 50)
    p, note = ev.paired_wilcoxon(a, a.copy())
    assert math.isnan(p) and "zero" in note
    p, note = ev.paired_wilcoxon(a + 1.0 + rng.normal(0, 0.1, 50), a)
    assert p < 1e-8 and note == ""
    b = a + rng.normal(0, 1, 50)
    p, _ = ev.paired_wilcoxon(b, a)
    assert p == pytest.approx(wilcoxon(b - a).pvalue)
    p, note = ev.paired_wilcoxon([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert p > 0.05 and "cannot fall below 0.05" in note
    p, note = ev.paired_wilcoxon([1.0], [0.0])
    assert math.isnan(p) and "too few" in note
    with pytest.raises(UsageError, match="same length"):
        ev.paired_wilcoxon([1.0, 2.0], [1.0])


def _rows() -> list[dict]:
    rows = []
    rng = np.random.default_rng(1)
    for i in range(12):
        label = "A" if i < 6 else "B"
        base = 30 + rng.normal(0, 1)
        for model, gain in (("bicubic", 0.0), ("net", 1.0 + 0.1 * i)):
            r = {"case": f"case-{i:04d}", "modality": "xray", "class": label, "model": model, "scale": 2, "is_gan": False}
            for m in ev.STAT_METRICS:
                r[m] = base + gain if m == "psnr" else 0.5 + gain / 10
            rows.append(r)
    return rows


def test_summarize_groups_and_pooled_class() -> None:
    groups = ev.summarize(_rows(), n_resamples=500)
    keys = [(g["class"], g["model"]) for g in groups]
    assert keys == [("A", "bicubic"), ("A", "net"), ("B", "bicubic"), ("B", "net"), ("all", "bicubic"), ("all", "net")]
    net_all = groups[-1]
    assert net_all["n"] == 12
    d = net_all["psnr"]["diff"]
    assert d["mean"] == pytest.approx(1.0 + 0.1 * np.mean(range(12)))
    assert d["ci_low"] < d["mean"] < d["ci_high"]
    assert d["p"] < 0.001
    assert "diff" not in groups[0]["psnr"]
    assert groups[1]["psnr"]["mean"] == pytest.approx(np.mean([r["psnr"] for r in _rows() if r["class"] == "A" and r["model"] == "net"]))


def test_select_cases_best_median_worst() -> None:
    sel = ev.select_cases(_rows())
    net = [s for s in sel if s["model"] == "net"]
    assert [s["rank"] for s in net] == ["best", "median", "worst"]
    assert [s["case"] for s in net] == ["case-0011", "case-0005", "case-0000"]
    assert net[0]["gain"] == pytest.approx(2.1)
    assert [s["rank"] for s in sel if s["model"] == "bicubic"] == ["best", "median", "worst"]
    one = [r for r in _rows() if r["case"] == "case-0003"]
    assert [s["rank"] for s in ev.select_cases(one) if s["model"] == "net"] == ["best/median/worst"]


# --------------------------------------------------------------------------- inputs


def test_collect_cases_classes_from_folders(tmp_path: Path, fakes: None) -> None:
    for name in ("Covid/a.png", "Covid/b.png", "Normal/c.png", "loose.png"):
        write_png(tmp_path / "data" / name, seed=len(name))
    cases = ev.collect_cases(tmp_path / "data")
    assert [(c.label, c.path.name) for c in cases] == [("Covid", "a.png"), ("Covid", "b.png"), ("Normal", "c.png"), ("all", "loose.png")]


def test_collect_cases_datalists(tmp_path: Path, fakes: None) -> None:
    write_png(tmp_path / "img" / "x.png")
    write_png(tmp_path / "img" / "y.png", seed=2)
    (tmp_path / "list.csv").write_text("image,class,modality\nimg/x.png,Covid,xray\nimg/y.png,Normal,\n")
    cases = ev.collect_cases(tmp_path / "list.csv")
    assert [(c.path.name, c.label, c.modality) for c in cases] == [("x.png", "Covid", "xray"), ("y.png", "Normal", None)]
    (tmp_path / "list.json").write_text(json.dumps({"testing": [{"image": "img/x.png"}]}))
    (case,) = ev.collect_cases(tmp_path / "list.json", modality="xray")
    assert case.label == "all" and case.modality == "xray" and case.path == tmp_path / "img" / "x.png"
    (tmp_path / "bad.csv").write_text("file\nimg/x.png\n")
    with pytest.raises(InputError, match="`image`"):
        ev.collect_cases(tmp_path / "bad.csv")
    (tmp_path / "badmod.csv").write_text("image,modality\nimg/x.png,pet\n")
    with pytest.raises(UsageError, match="modality"):
        ev.collect_cases(tmp_path / "badmod.csv")


# --------------------------------------------------------------------------- whole run


@pytest.fixture
def dataset(tmp_path: Path, fakes: None) -> Path:
    root = tmp_path / "data"
    for i in range(3):
        write_png(root / "Covid" / f"patient_smith_{i}.png", seed=i, size=(72, 64))
        write_png(root / "Normal" / f"patient_jones_{i}.png", seed=10 + i, size=(80, 60))
    return root


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_evaluation_writes_every_output(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    html = ev.run_evaluation(
        dataset, out, scales=(2, 4), models=("sharp", "gan"), seed=3, save_images=True, progress=False,
        n_resamples=300, upscaler_factory=fake_factory,
    )
    assert html == out / "report.html" and html.is_file() and (out / "report.pdf").is_file()

    rows = _read_csv(out / "metrics.csv")
    assert list(rows[0]) == list(ev.METRIC_COLUMNS)
    assert len(rows) == 6 * 2 * 3  # images x scales x models (bicubic added)
    assert {r["model"] for r in rows} == {"bicubic", "sharp", "gan"}
    assert {r["class"] for r in rows} == {"Covid", "Normal"}
    assert all(r["path"].startswith("case-") and r["path"] == r["case"] for r in rows)
    from medsr.privacy import KEY_FILE

    text = "".join(
        p.read_text(errors="ignore") for p in out.rglob("*") if p.suffix in (".csv", ".json", ".html") and p.name != KEY_FILE
    )
    assert "smith" not in text and "jones" not in text
    assert "patient_smith_0" in (out / KEY_FILE).read_text()  # only the private key file maps them back
    for r in rows:
        assert 10 < float(r["psnr"]) < 80 and 0 < float(r["ssim"]) <= 1
        assert math.isfinite(float(r["consistency_psnr"]))
    # bicubic round trip is not the identity, a perfect model's would be
    bic = [float(r["consistency_psnr"]) for r in rows if r["model"] == "bicubic"]
    assert all(v > 20 for v in bic)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["models"] == ["bicubic", "sharp", "gan"]
    assert summary["settings"]["gan_models"] == {"gan": "sharp"}
    g = {(x["class"], x["model"], x["scale"]): x for x in summary["groups"]}
    assert g[("all", "sharp", 2)]["n"] == 6 and g[("Covid", "sharp", 2)]["n"] == 3
    diff = g[("all", "sharp", 2)]["psnr"]["diff"]
    assert set(diff) == {"n", "mean", "ci_low", "ci_high", "p", "note"}
    assert "only 3 non-zero" in g[("Covid", "sharp", 2)]["psnr"]["diff"]["note"]
    srows = _read_csv(out / "summary.csv")
    assert len(srows) == len(summary["groups"]) and "psnr_ci_low" in srows[0]

    # case panels for the report: best/median/worst per model, with GAN maps
    sel = [s for s in summary["cases"] if s["model"] == "gan" and s["scale"] == 2]
    assert {s["rank"] for s in sel} >= {"best", "worst"}
    panel = json.loads((out / sel[0]["panel"] / "panel.json").read_text())
    for key in ("overview", "hr", "lr", "bicubic", "gan", "diff_gan", "gan_gan", "sharp"):
        assert (out / sel[0]["panel"] / panel["files"][key]).is_file(), key
    assert panel["gan"]["gan"]["reference"] == "sharp"

    saved = sorted(p.name for p in (out / "images" / "case-0001").iterdir())
    assert saved == sorted(f"{m}_x{s}.png" for m in ("bicubic", "sharp", "gan") for s in (2, 4))


def test_run_evaluation_is_reproducible_and_seeded(dataset: Path, tmp_path: Path) -> None:
    kw = dict(scales=(2,), degradation="modality", progress=False, report=False, n_resamples=200, upscaler_factory=fake_factory)
    ev.run_evaluation(dataset, tmp_path / "a", seed=1, **kw)
    ev.run_evaluation(dataset, tmp_path / "b", seed=1, **kw)
    ev.run_evaluation(dataset, tmp_path / "c", seed=2, **kw)
    a, b, c = ((tmp_path / d / "metrics.csv").read_text() for d in "abc")
    assert a == b
    assert a != c


def test_run_evaluation_volume_and_show_ids(tmp_path: Path, fakes: None) -> None:
    write_volume(tmp_path / "vol" / "head.nii.gz", shape=(40, 36, 6))
    out = tmp_path / "out"
    ev.run_evaluation(tmp_path / "vol", out, models=("sharp",), show_ids=True, save_images=True, progress=False,
                      n_resamples=100, upscaler_factory=fake_factory)
    rows = _read_csv(out / "metrics.csv")
    assert {r["size"] for r in rows} == {"40x36x6"} and rows[0]["path"].endswith("head.nii.gz")
    assert (out / "images" / "case-0001" / "sharp_x2.nii.gz").is_file()
    panel = json.loads(next((out / "cases").glob("*/panel.json")).read_text())
    assert panel["slice"] == 3


def test_run_evaluation_skips_broken_inputs(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (dataset / "Normal" / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    ev.run_evaluation(dataset, out, progress=False, report=False, n_resamples=100, upscaler_factory=fake_factory)
    errors = _read_csv(out / "errors.csv")
    assert len(errors) == 1 and errors[0]["path"].startswith("case-")
    assert "skipped" in capsys.readouterr().err
    assert len(_read_csv(out / "metrics.csv")) == 6


def test_run_evaluation_errors(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="scales"):
        ev.run_evaluation(dataset, tmp_path / "o", scales=(3,), upscaler_factory=fake_factory)
    with pytest.raises(UsageError, match="degradation"):
        ev.run_evaluation(dataset, tmp_path / "o", degradation="blur", upscaler_factory=fake_factory)
    with pytest.raises(UsageError, match="modality"):
        ev.run_evaluation(dataset, tmp_path / "o", modality="pet", upscaler_factory=fake_factory)
    (tmp_path / "file").write_text("x")
    from medsr.errors import OutputError

    with pytest.raises(OutputError, match="not a folder"):
        ev.run_evaluation(dataset, tmp_path / "file", upscaler_factory=fake_factory)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        ev.run_evaluation(empty, tmp_path / "o", progress=False, upscaler_factory=fake_factory)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"broken")
    with pytest.raises(InputError, match="could be evaluated"):
        ev.run_evaluation(bad, tmp_path / "o2", progress=False, upscaler_factory=fake_factory)


def test_skipped_files_are_anonymous_without_show_ids(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "archive"
    shutil.copytree(dataset, data)
    (data / "DOE^JOHN_12345.png").write_bytes(b"broken")  # a file name carrying a patient name and ID
    ev.run_evaluation(data, tmp_path / "o", progress=True, report=False, upscaler_factory=fake_factory)
    (err,) = _read_csv(tmp_path / "o" / "errors.csv")
    shown = capsys.readouterr().err
    assert err["path"].startswith("case-") and "skipped case-" in shown
    for text in (err["path"], err["reason"], shown, (tmp_path / "o" / "metrics.csv").read_text()):
        assert "DOE" not in text and "12345" not in text


def test_model_with_wrong_output_shape_is_reported(dataset: Path, tmp_path: Path) -> None:
    def factory(name: str, scale: int) -> FakeUpscaler:
        up = fake_factory(name, scale)
        if name == "sharp":
            up.scale = scale * 2  # upscales too much
        return up

    with pytest.raises(InputError, match="could be evaluated"):
        ev.run_evaluation(dataset, tmp_path / "o", models=("sharp",), progress=False, report=False, upscaler_factory=factory)
    err = _read_csv(tmp_path / "o" / "errors.csv")
    assert "returned shape" in err[0]["reason"]


def test_default_factory_uses_medsr_inference(dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("medsr.inference")
    try:
        from medsr.inference import load_upscaler

        load_upscaler("bicubic", 2)(torch.rand(1, 8, 8))
    except Exception as err:  # the lead's module or its transforms are not there yet
        pytest.skip(f"medsr.inference bicubic not usable here: {err}")
    out = tmp_path / "out"
    ev.run_evaluation(dataset, out, progress=False, report=False, n_resamples=100)
    assert {r["model"] for r in _read_csv(out / "metrics.csv")} == {"bicubic"}


def test_gan_without_pixel_model_is_compared_with_bicubic_and_jpeg_saved_as_png(tmp_path: Path, fakes: None) -> None:
    from PIL import Image

    src = write_png(tmp_path / "png" / "a.png", size=(64, 64))
    (tmp_path / "data").mkdir()
    Image.open(src).save(tmp_path / "data" / "a.jpg", quality=95)
    out = tmp_path / "out"
    ev.run_evaluation(tmp_path / "data", out, models=("gan",), save_images=True, progress=False, report=False,
                      n_resamples=50, upscaler_factory=fake_factory)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["gan_models"] == {"gan": "bicubic"}
    assert summary["settings"]["data"] is None  # no folder names unless show_ids
    panel = json.loads(next((out / "cases").glob("*/panel.json")).read_text())
    assert panel["gan"]["gan"]["reference"] == "bicubic" and "gan_gan" in panel["files"]
    assert sorted(p.name for p in (out / "images" / "case-0001").iterdir()) == ["bicubic_x2.png", "gan_x2.png"]
