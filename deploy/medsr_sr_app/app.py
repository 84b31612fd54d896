"""MONAI Deploy application: DICOM series in, super-resolved derived DICOM series out, with a medsr bundle.

Pipeline (MONAI Deploy App SDK operators, Holoscan runtime):

    DICOMDataLoaderOperator -> DICOMSeriesSelectorOperator (CT, MR, CR, DX) -> MedsrBundleSROperator

``MedsrBundleSROperator`` runs the bundle's own MONAI inference workflow
(``configs/inference.json`` through ``monai.bundle.ConfigWorkflow``: ``LoadImaged`` with
``MedsrReader``, modality normalisation, ``medsr.inferers.TiledInferer``, inverse
normalisation, derived-series writer) on the files of every selected series. The SDK's
``MonaiBundleInferenceOperator`` is not used: it hands the network a volume converted by
``DICOMSeriesToVolumeOperator`` and returns an ``Image``, so the per-instance headers a
derived series needs (SourceImageSequence per source SOP instance, the stored-value
representation, Modality LUT, spacing source) are gone, and the SDK has no writer for derived
image series (only SEG, SR and encapsulated PDF). medsr's workflow reads the instances itself
and writes a derived series that passes dciodvfy.

Run (input: a folder of DICOM files; output: one ``<SeriesInstanceUID>_sr<scale>x/`` folder per series)::

    python deploy/medsr_sr_app -i INPUT_DIR -o OUTPUT_DIR [-m BUNDLE_DIR]

``-m`` (or ``HOLOSCAN_MODEL_PATH``) may name a bundle folder; default: the shipped bundle named
by ``MEDSR_BUNDLE`` (``edsr_m``). ``MEDSR_SCALE`` picks 2 (default) or 4.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application, Fragment, Operator, OperatorSpec
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

__all__ = ["MedsrBundleSROperator", "MedsrSRApp", "SELECTION_RULES", "resolve_bundle_path"]

SELECTION_RULES = """{
    "selections": [
        {"name": "images", "conditions": {"Modality": "(?i)(CT|MR|CR|DX)"}}
    ]
}"""
"""Series the app upscales: every CT, MR, CR and DX series of the study."""


def resolve_bundle_path(model_path: str | os.PathLike | None) -> Path:
    """The bundle folder: ``model_path`` if it is one, else the shipped bundle ``MEDSR_BUNDLE`` (default edsr_m)."""
    from medsr.inference import resolve_bundle

    if model_path and (Path(model_path) / "configs" / "inference.json").is_file():
        return Path(model_path)
    return resolve_bundle(os.environ.get("MEDSR_BUNDLE", "edsr_m")).root


class MedsrBundleSROperator(Operator):
    """Upscale every selected DICOM series with a medsr MONAI bundle; write each as a derived series.

    Input ``study_selected_series_list`` (from ``DICOMSeriesSelectorOperator``); output
    ``output_folders``: the list of written series folders.

    Args:
        bundle_path: the bundle folder (``configs/inference.json``, ``models/``).
        output_folder: where the derived series go.
        scale: 2 or 4.
    """

    def __init__(self, fragment: Fragment, *args: Any, bundle_path: Path, output_folder: Path, scale: int = 2,
                 **kwargs: Any) -> None:
        self.bundle_path = Path(bundle_path)
        self.output_folder = Path(output_folder)
        self.scale = int(scale)
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("study_selected_series_list")
        spec.output("output_folders").condition(_condition_none())

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        selected = op_input.receive("study_selected_series_list") or []
        datalist = []
        for study_selected in selected:
            for sel in study_selected.selected_series:
                series = sel.series
                files = [str(sop.get_native_sop_instance().filename) for sop in series.get_sop_instances()]
                out = self.output_folder / f"{series.SeriesInstanceUID}_sr{self.scale}x"
                datalist.append({"image": files if len(files) > 1 else files[0], "output": str(out)})
        if not datalist:
            self._logger.warning("no CT, MR, CR or DX series in the input; nothing written")
        else:
            run_bundle(self.bundle_path, datalist, self.scale)
        op_output.emit([d["output"] for d in datalist], "output_folders")


def _condition_none() -> Any:
    from monai.deploy.core import ConditionType

    return ConditionType.NONE


def run_bundle(bundle_path: Path, datalist: list[dict[str, Any]], scale: int) -> None:
    """The bundle's inference workflow (MONAI ``ConfigWorkflow``, properties checked) on ``datalist``."""
    from monai.bundle import ConfigWorkflow

    cfg = bundle_path / "configs"
    wf = ConfigWorkflow(
        config_file=str(cfg / "inference.json"), meta_file=str(cfg / "metadata.json"), logging_file=False,
        workflow_type="infer", bundle_root=str(bundle_path), scale=scale, datalist=datalist, num_workers=0,
        dataset_dir=str(Path(datalist[0]["output"]).parent), output_dir=str(Path(datalist[0]["output"]).parent),
    )
    wf.initialize()
    missing = wf.check_properties()
    if missing:
        raise RuntimeError(f"bundle {bundle_path} lacks MONAI inference properties {missing}; it is not a medsr bundle.")
    wf.run()
    wf.finalize()


class MedsrSRApp(Application):
    """DICOM series -> medsr bundle super-resolution -> derived DICOM series (see the module docstring)."""

    def compose(self) -> None:
        ctx = Application.init_app_context(self.argv)
        bundle = resolve_bundle_path(ctx.model_path)
        scale = int(os.environ.get("MEDSR_SCALE", "2"))
        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=Path(ctx.input_path),
                                         name="dicom_loader")
        selector = DICOMSeriesSelectorOperator(self, rules=SELECTION_RULES, all_matched=True, name="series_selector")
        sr = MedsrBundleSROperator(self, bundle_path=bundle, output_folder=Path(ctx.output_path), scale=scale,
                                   name="medsr_sr")
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, sr, {("study_selected_series_list", "study_selected_series_list")})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    MedsrSRApp().run()
