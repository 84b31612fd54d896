"""medsr.report.build_report on a small synthetic results folder: HTML parses, PDF renders, no identifiers."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from cli_imports import imported_by

from medsr import evaluation as ev
from medsr.evaluation.stats import json_safe, sources
from medsr.errors import InputError
from medsr.report import build_report

PATIENT = "DOE^JOHN_1234567"


def _rows(n_per_class: int = 5) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    k = 0
    for label, size, fmt in (("Covid", "640x512", "png"), ("Normal", "1800x1500", "jpeg")):
        for _ in range(n_per_class):
            k += 1
            base = 32 + rng.normal(0, 1.5)
            for model, gain, gan in (("bicubic", 0.0, False), ("edsr_m", 1.2, False), ("srgan", -0.4, True)):
                r = {
                    "case": f"case-{k:04d}", "path": f"/data/{label}/{PATIENT}_{k}.{fmt}", "modality": "xray",
                    "class": label, "format": fmt, "size": size, "model": model, "is_gan": gan, "scale": 2,
                    "psnr": base + gain + rng.normal(0, 0.2), "ssim": 0.90 + gain / 50 + rng.normal(0, 0.005),
                    "mae": 0.02 - gain / 200, "nrmse": 0.05 - gain / 100, "sharpness": 0.8 + (0.3 if gan else 0.1 * gain),
                    "consistency_psnr": 45 + gain,
                }
                rows.append(r)
    return rows


def _panel_png(rgb: bool = False, seed: int = 0) -> np.ndarray:
    a = (np.random.default_rng(seed).random((96, 96)) * 255).astype(np.uint8)
    return np.stack([a] * 3, -1) if rgb else a


def make_results(root: Path, *, show_ids: bool = True, n_per_class: int = 5) -> Path:
    """A results folder as run_evaluation writes it, without running any model."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows = _rows(n_per_class)
    with open(root / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ev.METRIC_COLUMNS)
        for r in rows:
            w.writerow([r[c] if (show_ids or c != "path") else r["case"] for c in ev.METRIC_COLUMNS])
    groups = ev.summarize(rows, n_resamples=200)
    cases = ev.select_cases(rows)
    for sel in cases:
        key = f"{sel['case']}_x{sel['scale']}"
        folder = root / "cases" / key
        sel["panel"] = f"cases/{key}"
        if folder.exists():
            continue
        folder.mkdir(parents=True)
        files = {"overview": "overview.png", "hr": "hr.png", "lr": "lr.png"}
        for m in ("bicubic", "edsr_m", "srgan"):
            files[m] = f"{m}.png"
            files[f"diff_{m}"] = f"diff_{m}.png"
        files["gan_srgan"] = "gan_srgan.png"
        for i, (k, name) in enumerate(files.items()):
            Image.fromarray(_panel_png(rgb=k.startswith(("diff", "gan", "overview")), seed=i)).save(folder / name)
        panel = {
            "case": sel["case"], "scale": 2, "modality": "xray", "class": sel["class"], "slice": None,
            "region": [0, 96, 0, 96], "image_size": [640, 512], "zoom": 1,
            "window": {"kind": "percentile", "low": 0.5, "high": 99.5}, "diff_max": 10, "diff_unit": "% of display range",
            "gan": {"srgan": {"reference": "edsr_m", "fraction_flagged": 0.123}}, "files": files,
            "path": sel["case"],
        }
        (folder / "panel.json").write_text(json.dumps(panel))
    summary = {
        "medsr_version": "0.1.0", "created": "2024-01-01T00:00:00+00:00",
        "settings": {"data": "/data", "scales": [2], "models": ["bicubic", "edsr_m", "srgan"], "gan_models": {"srgan": "edsr_m"},
                     "modality": "auto", "degradation": "bicubic", "seed": 0,
                     "bootstrap": {"method": "percentile", "n_resamples": 200, "confidence": 0.95},
                     "test": "Wilcoxon", "metric_convention": "test convention", "display_window": "auto",
                     "show_ids": show_ids},
        "n_images": 2 * n_per_class, "n_failed": 0, "metrics": list(ev.STAT_METRICS), "higher_is_better": ev.HIGHER_IS_BETTER,
        "groups": groups, "sources": sources(rows), "cases": cases,
    }
    (root / "summary.json").write_text(json.dumps(json_safe(summary)))
    return root


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.headers: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self._in_th = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables += 1
        if tag == "th":
            self._in_th = True
            self.headers.append("")
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("a", "link", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._in_th = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_th:
            self.headers[-1] += data


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path / "results")


@pytest.fixture
def artefacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where a test leaves what a person should look at: ``$MEDSR_TEST_ARTEFACTS/<test>`` (kept), else tmp_path."""
    root = os.environ.get("MEDSR_TEST_ARTEFACTS")
    if not root:
        return tmp_path
    folder = Path(root) / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_html_is_self_contained_and_has_the_tables(results: Path) -> None:
    html, pdf = build_report(results)
    assert html == results / "report.html" and pdf == results / "report.pdf"
    doc = html.read_text(encoding="utf-8")
    p = _Collector()
    p.feed(doc)
    p.close()
    # per class (Covid, Normal, all) a results table, plus other measures and consistency
    assert p.tables >= 5
    assert any("PSNR" in h for h in p.headers) and any("SSIM" in h for h in p.headers)
    assert any("difference vs bicubic (95% CI)" in h for h in p.headers)
    assert p.images and all(src.startswith("data:image/png;base64,") for src in p.images)
    for src in p.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(link.startswith("#") for link in p.links), p.links
    text = " ".join(p.text)
    for needle in ("What was done", "Consistency check", "possibly invented detail", "Limits of this evaluation",
                   "All classes together", "edsr_m", "srgan", "\u2605"):
        assert needle.lower() in text.lower() or needle in doc, needle
    assert "confounded" in text  # classes differ in format and size
    assert "small group" in text  # n = 5 per class


def test_report_command_imports_neither_torch_nor_monai(results: Path) -> None:
    """``medsr report`` only reads tables and draws (start-up proportional to the work, issue 15)."""
    assert imported_by(["report", results], ["torch", "monai"]) == ([], 0)
    assert (results / "report.html").is_file() and (results / "report.pdf").is_file()


def test_no_identifiers_unless_asked(results: Path) -> None:
    html, pdf = build_report(results)
    assert PATIENT not in html.read_text(encoding="utf-8")
    if shutil.which("pdftotext"):
        assert PATIENT not in subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    html, _ = build_report(results, show_ids=True)
    assert PATIENT in html.read_text(encoding="utf-8")


def test_show_ids_cannot_reveal_what_was_never_written(tmp_path: Path) -> None:
    root = make_results(tmp_path / "anon", show_ids=False)
    html, _ = build_report(root, show_ids=True)
    assert PATIENT not in html.read_text(encoding="utf-8")


def test_missing_or_empty_results(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="metrics.csv"):
        build_report(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        build_report(tmp_path / "nope")


@pytest.mark.parametrize("n_per_class", [1, 5])
def test_pdf_renders_with_pdftoppm(tmp_path: Path, artefacts: Path, n_per_class: int) -> None:
    """PDF pages as PNG (left in $MEDSR_TEST_ARTEFACTS to look at): a small-n and a larger report."""
    _, pdf = build_report(make_results(tmp_path / "results", n_per_class=n_per_class))
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if not shutil.which("pdftoppm"):
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(artefacts / "page")], check=True, timeout=120)
    pages = sorted(artefacts.glob("page*.png"))
    assert len(pages) >= 1
    from PIL import Image

    first = np.asarray(Image.open(pages[0]).convert("L"), dtype=np.float32)
    assert first.std() > 5  # text and tables, not a blank page


@pytest.mark.parametrize("n_per_class", [1, 5])
def test_chromium_renders_the_page(tmp_path: Path, artefacts: Path, n_per_class: int) -> None:
    """Headless Chromium screenshot of the HTML report (left in $MEDSR_TEST_ARTEFACTS to look at)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not on PATH")
    html, _ = build_report(make_results(tmp_path / "results", n_per_class=n_per_class))
    shot = artefacts / "report_html.png"
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000", html.resolve().as_uri(),
    ]
    try:
        subprocess.run(cmd, capture_output=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish within 90 s")
    assert shot.is_file()
    from PIL import Image

    img = Image.open(io.BytesIO(shot.read_bytes())).convert("L")
    assert img.size == (1280, 2000)
    a = np.asarray(img, dtype=np.float32)
    assert a.std() > 10 and (a < 128).mean() > 0.01  # text, tables and figures were drawn


def test_bicubic_only_results(tmp_path: Path) -> None:
    root = make_results(tmp_path / "r")
    with open(root / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["model"] == "bicubic"]
    with open(root / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ev.METRIC_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    summary = json.loads((root / "summary.json").read_text())
    summary["settings"]["models"] = ["bicubic"]
    summary["settings"]["gan_models"] = {}
    summary["groups"] = [g for g in summary["groups"] if g["model"] == "bicubic"]
    summary["cases"] = [c for c in summary["cases"] if c["model"] == "bicubic"]
    (root / "summary.json").write_text(json.dumps(summary))
    html, _ = build_report(root)
    doc = html.read_text(encoding="utf-8")
    assert "Possibly invented detail (GAN models)" not in doc
    assert "Best" in doc and "bicubic PSNR" in doc


# --------------------------------------------------------------------------- small-sample verdicts


def test_small_n_report_has_no_coloured_verdict_and_states_n(tmp_path: Path) -> None:
    """2 images (the case of the issue): no green/red anywhere, n in the headline, images shown one by one."""
    from medsr.report.build import report_context
    from medsr.report.results import load_results

    root = make_results(tmp_path / "r", n_per_class=1)
    html, _ = build_report(root)
    doc = html.read_text(encoding="utf-8")
    assert 'class="better"' not in doc and 'class="worse"' not in doc
    assert doc.count('was <span class="few">not judged against bicubic</span>') == 2  # edsr_m and srgan
    ctx = report_context(*load_results(root))
    for f in ctx["findings"]:
        assert f["verdict"] == "few" and f["word"] == "not judged against bicubic"
        assert "(n = 2 images)" in f["where"] and "a verdict needs at least 10" in f["detail"]
    assert "Shown image by image" in doc  # paired dot / slope plot, not box plots
    assert "(n = 2 images)" in doc  # the section headline


def test_large_clear_gain_is_green_when_interval_and_test_agree(tmp_path: Path) -> None:
    from medsr.report.build import report_context
    from medsr.report.results import load_results

    root = make_results(tmp_path / "r", n_per_class=12)  # edsr_m +1.2 dB on 24 images
    ctx = report_context(*load_results(root))
    edsr = [f for f in ctx["findings"] if f["model"] == "edsr_m"]
    assert edsr and edsr[0]["verdict"] == "better" and "(n = 24 images)" in edsr[0]["where"]
    assert "Wilcoxon p" in edsr[0]["detail"]
    assert 'class="better"' in build_report(root)[0].read_text(encoding="utf-8")


@pytest.mark.parametrize("diff, expected", [
    ({"n": 9, "ci_low": 1.0, "ci_high": 2.0, "p": 0.004}, "few"),
    ({"n": 10, "ci_low": 1.0, "ci_high": 2.0, "p": 0.002}, "better"),
    ({"n": 10, "ci_low": 0.1, "ci_high": 2.0, "p": 0.08}, "unclear"),  # interval and test disagree
    ({"n": 10, "ci_low": -0.1, "ci_high": 2.0, "p": 0.01}, "unclear"),
    ({"n": 30, "ci_low": -2.0, "ci_high": -1.0, "p": 0.001}, "worse"),
])
def test_verdict_rule(diff: dict, expected: str) -> None:
    from medsr.report.build import _verdict

    assert _verdict(diff, True) == expected
