"""The ``medsr`` command line: upscale, degrade, evaluate, report.

Heavy imports (torch, MONAI, pydicom) happen inside the commands so that
``medsr --help`` and ``medsr --version`` answer at once. Expected failures print
one line to stderr and exit with the codes documented in :mod:`medsr.errors`;
``-v`` adds the traceback for unexpected ones.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Optional

import typer

from medsr import __version__
from medsr.errors import EXIT_INPUT, EXIT_PARTIAL, MedsrError, UsageError

__all__ = ["app", "run"]

app = typer.Typer(
    name="medsr",
    help="Super-resolution for medical images (chest X-ray, CT, MRI): DICOM, NIfTI, PNG/TIFF in, same format out.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

MODEL_HELP = "bicubic, lanczos, a shipped bundle (edsr_m, srcnn_srgan_hybrid, attention_residual) or a bundle folder; with --slices: linear, cubic, lanczos or slice_smore."
DEVICE_HELP = "auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps; a GPU asked for by name must be present."
EXIT_CODES_HELP = "Exit codes: 0 ok, 1 some inputs failed (errors.csv), 2 usage error, 3 no input could be read, 4 output error."


def run(argv: list[str] | None = None) -> None:
    """The ``medsr`` console script: :data:`app` with ``evaluate -s 2 4`` read as ``-s 2 -s 4``."""
    app(args=_expand_scale_lists(sys.argv[1:] if argv is None else argv), prog_name="medsr")


def _expand_scale_lists(args: list[str]) -> list[str]:
    """``evaluate ... -s 2 4`` -> ``-s 2 -s 4``: numbers right after a scale option's value are more scales."""
    if "evaluate" not in args:
        return list(args)
    out: list[str] = []
    in_scales = False  # the previous token was a scale value
    for i, a in enumerate(args):
        if in_scales and a.isdigit():
            out += ["-s", a]
            continue
        in_scales = a.isdigit() and i > 0 and args[i - 1] in ("-s", "--scale")
        out.append(a)
    return out


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"medsr {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
) -> None:
    """medsr: upscale medical images x2/x4 with networks or interpolation, and evaluate them."""
    # medsr reports each bad input in one line; the readers' own warnings would add multi-line noise
    # (and pydicom's can quote header values such as a birth date)
    warnings.filterwarnings("ignore", module=r"(pydicom|nibabel|PIL|tifffile)(\.|$)")


# --------------------------------------------------------------------------- helpers


def _fail(err: BaseException, verbose: bool = False) -> typer.Exit:
    """Print one line for an expected error and return the Exit to raise."""
    if verbose:
        traceback.print_exception(err)
    from medsr.privacy import one_line  # deferred: start-up

    code = err.exit_code if isinstance(err, MedsrError) else EXIT_INPUT
    typer.echo(f"medsr: error: {one_line(err)}", err=True)
    return typer.Exit(code)


def _finish(result: Any, quiet: bool) -> None:
    """Print the batch summary and exit with the documented code."""
    if not quiet:
        typer.echo(result.summary(), err=True)
    raise typer.Exit(result.exit_code)


def _bundle_log(quiet: bool, trust_bundle: bool) -> Any:
    """Where to say which bundle config runs: stderr, and even under -q for a trusted third-party bundle."""
    return None if quiet and not trust_bundle else (lambda m: typer.echo(m, err=True))


def _check_scale(scale: int) -> None:
    if scale not in (2, 4):
        raise UsageError(f"`--scale` must be 2 or 4, got {scale}.")


# --------------------------------------------------------------------------- commands

TTA_HELP = "Test-time self-ensemble: average the network over the 8 flips/rotations of the input (8x the time)."
InputArg = typer.Argument(..., exists=True, readable=True, help="An image file (DICOM, NIfTI, PNG, TIFF, JPEG), a DICOM series folder or a folder of images.")


_LEAN_BLOCK = (
    "ignite", "jsonschema", "matplotlib", "mlflow", "pandas", "requests",
    "scipy.ndimage", "scipy.optimize", "scipy.signal", "scipy.sparse", "scipy.spatial", "skimage", "sklearn",
)
"""Modules ``import monai`` pulls in (each guarded by MONAI: ImportError -> a placeholder) that neither
an in-plane ``upscale`` with a shipped bundle nor ``degrade`` uses."""


def _quick_start(lean_monai: bool) -> None:
    """Cold-start shortcuts for ``upscale`` and ``degrade`` (docs/performance.md, start-up).

    - At exit, freeze the garbage collector: the interpreter then tears down
      torch's (and MONAI's) ~10^6 objects without collecting them (0.9 s).
    - ``lean_monai`` (the shipped bundles, whose ``network_def`` is all that is built, and
      ``degrade``): import MONAI now without the optional modules that only MONAI
      features medsr does not call here use (:data:`_LEAN_BLOCK`: ignite for engines and
      handlers, jsonschema for bundle verification, requests for dataset downloads,
      matplotlib, mlflow, pandas, scikit-learn, parts of SciPy, scikit-image; MONAI
      substitutes its own placeholders). A third-party bundle's config may use
      them, so it gets the full import. Only before MONAI is first imported; they import
      normally again afterwards. Interpolation imports no MONAI at all.
    """
    import atexit
    import gc
    import sys

    if not getattr(_quick_start, "registered", False):
        atexit.register(gc.freeze)
        _quick_start.registered = True  # type: ignore[attr-defined]
    if lean_monai and "monai" not in sys.modules:
        blocked = [m for m in _LEAN_BLOCK if m not in sys.modules]
        for m in blocked:
            sys.modules[m] = None  # type: ignore[assignment]
        try:
            import monai  # noqa: F401
        finally:
            for m in blocked:
                if m in sys.modules and sys.modules[m] is None:
                    del sys.modules[m]


@app.command(epilog=EXIT_CODES_HELP)
def upscale(
    input: str = typer.Argument(..., metavar="INPUT", help=InputArg.help + " Or a PACS series/study URL: http(s)://HOST:PORT/ROOT/studies/<uid>, optionally /series/<uid> (DICOMweb), or the same as dicom://AET@HOST:PORT/studies/... (DIMSE)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="OUTPUT", help="Output file or folder (created if missing), or a PACS: a DICOMweb root http(s)://HOST:PORT/ROOT or dicom://AET@HOST:PORT. Default: beside the input, named <stem>_sr<scale>x.<ext>."),
    scale: Optional[int] = typer.Option(None, "-s", "--scale", help="In-plane factor: 2 or 4 (default 2; none with --slices)."),
    slices: Optional[int] = typer.Option(None, "--slices", help="Volumes: 2 or 4 times thinner slice spacing along the acquisition's slice axis (models: linear, cubic, lanczos, slice_smore)."),
    model: str = typer.Option("bicubic", "-m", "--model", help=MODEL_HELP),
    adapt: float = typer.Option(0.0, "--adapt", help="With --slices -m slice_smore: seconds to fine-tune on the scan's own in-plane detail first (SMORE self-supervision); 0 = off."),
    device: str = typer.Option("auto", "-d", "--device", help=DEVICE_HELP),
    tile: Optional[int] = typer.Option(None, "--tile", help="Tile edge in input pixels (default: from available memory)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Tiles/slices per forward pass (default: from available memory)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 (CPU) or fp16 (CUDA)."),
    tta: bool = typer.Option(False, "--tta", help=TTA_HELP),
    engine: str = typer.Option("torch", "--engine", help="Network runtime on CPU: torch, openvino (pip install \"medsr[openvino]\") or auto (OpenVINO when installed)."),
    resume: bool = typer.Option(False, "--continue", help="Skip inputs whose output already exists."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    trust_bundle: bool = typer.Option(False, "--trust-bundle", help="Allow a bundle folder that medsr does not ship (its config can run code)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (for logs)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="More detail, tracebacks for unexpected errors."),
) -> None:
    """Upscale images x2 or x4 and write them in the input's format as derived images."""
    try:
        from medsr.pacs.locations import is_remote  # stdlib only: keeps --help fast

        remote = is_remote(input) or is_remote(output)
        if slices is not None:
            if remote or tta:
                raise UsageError("`--slices` works on local volumes, without --tta; fetch the series first.")
            from medsr.slices import upscale_slices_command  # deferred: start-up

            result = upscale_slices_command(
                input, output, slices, scale, model, device=device, tile=tile, batch_size=batch_size,
                precision=precision, resume=resume, overwrite=overwrite, trust_bundle=trust_bundle,
                progress=not no_progress and not quiet, verbose=verbose, log=_bundle_log(quiet, trust_bundle),
                adapt_seconds=adapt,
            )
            _finish(result, quiet)
        if adapt:
            raise UsageError("`--adapt` needs --slices (it fine-tunes the slice model on the scan).")
        scale = 2 if scale is None else scale
        _check_scale(scale)
        if not remote and not Path(input).exists():
            raise UsageError(f"input {input} does not exist; give an image file, a folder or a PACS URL.")
        from medsr.shipped import shipped_bundles

        _quick_start(model in shipped_bundles())
        from medsr.inference import describe, load_upscaler, upscale_path  # deferred: start-up

        from medsr.tta import with_tta  # deferred: start-up

        upscaler = with_tta(load_upscaler(
            model, scale, device=device, tile=tile, batch_size=batch_size, precision=precision, trust_bundle=trust_bundle,
            log=_bundle_log(quiet, trust_bundle), engine=engine,
        ), tta)
        if verbose:
            typer.echo(describe(upscaler), err=True)
        if remote:
            from medsr.pacs import upscale_location  # deferred: start-up

            result = upscale_location(
                input, output, upscaler, overwrite=overwrite, resume=resume, progress=not no_progress and not quiet,
                verbose=verbose, log=(lambda m: None) if quiet else None,
            )
        else:
            result = upscale_path(
                Path(input), Path(output) if output is not None else None, upscaler, overwrite=overwrite, resume=resume,
                progress=not no_progress and not quiet, verbose=verbose,
            )
    except MedsrError as err:
        raise _fail(err, verbose) from None
    _finish(result, quiet)


@app.command(epilog=EXIT_CODES_HELP)
def degrade(
    input: Path = InputArg,
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file or folder. Default: beside the input, named <stem>_lr<scale>x.<ext>."),
    scale: int = typer.Option(2, "-s", "--scale", help="Downsampling factor: 2 or 4."),
    modality: str = typer.Option("auto", "--modality", help="xray, ct, mr or auto (from the file)."),
    degradation: str = typer.Option("modality", "--degradation", help="modality (physics simulator) or bicubic (classic SR protocol)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same output."),
    resume: bool = typer.Option(False, "--continue", help="Skip inputs whose output already exists."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Tracebacks for unexpected errors."),
) -> None:
    """Simulate a low-resolution acquisition of an image (to make HR/LR pairs or test a model)."""
    try:
        _check_scale(scale)
        if modality not in ("auto", "xray", "ct", "mr"):
            raise UsageError(f"`--modality` must be auto, xray, ct or mr, got {modality!r}.")
        if degradation not in ("modality", "bicubic"):
            raise UsageError(f"`--degradation` must be modality or bicubic, got {degradation!r}.")
        _quick_start(True)  # MONAI's transforms, not its engines
        from medsr.batch import discover, plan_outputs, run_batch  # deferred: start-up
        from medsr.evaluation.protocol import degrade_image  # deferred: start-up
        from medsr.io import load_image, save_image  # deferred: start-up

        items = discover(input, output)
        outputs = plan_outputs(items, input, output, scale, tag="lr")

        def work(item: Any, out: Path) -> None:
            img = load_image(item.files if item.kind == "series" else item.path, modality=None if modality == "auto" else modality)
            save_image(degrade_image(img, scale, degradation, seed), out, overwrite=overwrite)

        result = run_batch(
            items, outputs, work, resume=resume, overwrite=overwrite, progress=not no_progress and not quiet,
            verbose=verbose, description=f"degrade /{scale}",
        )
    except MedsrError as err:
        raise _fail(err, verbose) from None
    _finish(result, quiet)


@app.command(epilog=EXIT_CODES_HELP)
def evaluate(
    data: Path = typer.Argument(..., exists=True, help="A folder (class sub-folders become the class), a datalist JSON/CSV, or a DICOM series."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder for metrics.csv, summary.json/csv, report.html/pdf."),
    scales: list[int] = typer.Option([2], "-s", "--scale", help="Scales to evaluate: -s 2 4 or -s 2 -s 4."),
    models: str = typer.Option("bicubic", "-m", "--models", help="Comma-separated models; bicubic is always included. " + MODEL_HELP),
    modality: str = typer.Option("auto", "--modality", help="auto, xray, ct or mr."),
    degradation: str = typer.Option("bicubic", "--degradation", help="bicubic (classic protocol) or modality (physics simulators)."),
    protocol: str = typer.Option("inplane", "--protocol", help="inplane, or slices: volumes degraded along the slice axis (-s = slice factor N; models linear, lanczos, slice_smore; cubic always)."),
    save_images: bool = typer.Option(False, "--save-images", help="Also save every model output."),
    tta: bool = typer.Option(False, "--tta", help=TTA_HELP),
    y_channel: bool = typer.Option(False, "--y-channel", help="Score as SR papers do: RGB on 8-bit BT.601 luminance Y, outputs rounded to 8 bits."),
    seed: int = typer.Option(0, "--seed", help="Seed of the degradations and the bootstrap."),
    device: str = typer.Option("auto", "-d", "--device", help=DEVICE_HELP),
    show_ids: bool = typer.Option(False, "--show-ids", help="Show file names / patient identifiers in the outputs."),
    classes: str = typer.Option("Covid,Normal,Pneumonia", "--classes", help="Class labels shown as they are; other folder/datalist labels become class-01, class-02... (see case-key.private.csv)."),
    window: str = typer.Option("auto", "--window", help="Display window of the report panels: auto (the file's own Window Center/Width, else CT mediastinum or percentiles), lung, mediastinum, bone or percentile."),
    trust_bundle: bool = typer.Option(False, "--trust-bundle", help="Allow a bundle folder that medsr does not ship (its config can run code)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Tracebacks for unexpected errors."),
) -> None:
    """Score models against bicubic on HR images (degrade -> upscale -> compare), write tables and a report."""
    try:
        for s in scales:
            _check_scale(s)
        if modality not in ("auto", "xray", "ct", "mr"):
            raise UsageError(f"`--modality` must be auto, xray, ct or mr, got {modality!r}.")
        if degradation not in ("modality", "bicubic"):
            raise UsageError(f"`--degradation` must be modality or bicubic, got {degradation!r}.")
        names = [m.strip() for m in models.split(",") if m.strip()]
        if protocol not in ("inplane", "slices"):
            raise UsageError(f"`--protocol` must be inplane or slices, got {protocol!r}.")
        if protocol == "slices":
            from medsr.slice_evaluation import run_slice_evaluation  # deferred: start-up

            report = run_slice_evaluation(
                data, output, factors=tuple(scales), models=tuple(names), seed=seed, device=device, show_ids=show_ids,
                trust_bundle=trust_bundle, progress=not no_progress and not quiet, log=_bundle_log(quiet, trust_bundle),
            )
            if not quiet:
                typer.echo(f"report: {report}")
            raise typer.Exit(0)
        from medsr.evaluation import run_evaluation  # deferred: start-up

        factory = None
        if tta:
            from medsr.inference import load_upscaler  # deferred: start-up
            from medsr.tta import with_tta  # deferred: start-up

            def factory(name: str, s: int) -> Any:
                return with_tta(load_upscaler(name, s, device=device, trust_bundle=trust_bundle, log=_bundle_log(quiet, trust_bundle)))

        report = run_evaluation(
            data, output, scales=tuple(scales), models=tuple(names), modality=modality, degradation=degradation,
            save_images=save_images, seed=seed, show_ids=show_ids, progress=not no_progress and not quiet, device=device,
            trust_bundle=trust_bundle, log=_bundle_log(quiet, trust_bundle), classes=classes.split(","),
            upscaler_factory=factory, window=window, y_channel=y_channel,
        )
    except MedsrError as err:
        raise _fail(err, verbose) from None
    if not quiet:
        typer.echo(f"report: {report}")
    errors_csv = output / "errors.csv"  # run_evaluation writes it only when some inputs failed
    if errors_csv.is_file():
        typer.echo(f"medsr: some inputs could not be evaluated (see {errors_csv})", err=True)
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def report(
    results: Path = typer.Argument(..., exists=True, file_okay=False, help="An evaluation output folder (from medsr evaluate)."),
    show_ids: bool = typer.Option(False, "--show-ids", help="Show file names / patient identifiers."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Tracebacks for unexpected errors."),
) -> None:
    """Rebuild report.html and report.pdf from saved evaluation results."""
    try:
        from medsr.report import build_report  # deferred: start-up

        html, pdf = build_report(results, show_ids=show_ids)
    except MedsrError as err:
        raise _fail(err, verbose) from None
    typer.echo(f"report: {html}\nreport: {pdf}")


@app.command()
def serve(
    config: Path = typer.Option(..., "-c", "--config", exists=True, dir_okay=False, readable=True, help="The node's TOML configuration (see the user guide)."),
    show_ids: bool = typer.Option(False, "--show-ids", help="Put Study/SeriesInstanceUIDs in the log (default: hashed labels)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="More detail, tracebacks for unexpected errors."),
) -> None:
    """Run a DICOM node: receive studies (C-STORE), upscale each complete series, forward the derived series."""
    try:
        from medsr.pacs.serve import serve as run_node  # deferred: start-up

        run_node(config, show_ids=show_ids, verbose=verbose)
    except MedsrError as err:
        raise _fail(err, verbose) from None
