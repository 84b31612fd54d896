"""Build the external validation set the model cards report: real images from other hospitals and scanners.

None of these files is in the training data (../shared/data): they ship inside
PyPI packages (pydicom, pydicom-data, nibabel; MIT/BSD licences) and come from
other vendors and sites (Philips, Fuji, GE, Siemens, Toshiba CR/CT/MR). They are
copied into OUT/<modality>/ so ``medsr evaluate OUT -o RESULTS`` reports per
modality, with the modality sub-folders as the "class" column.

    python scripts/external_validation.py /tmp/external_val
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nibabel
import pydicom.data

__all__ = ["EXTERNAL", "build"]

EXTERNAL = {
    "xray": ["RG1_UNCR.dcm", "RG3_UNCR.dcm"],  # Philips CR (Hamburg), Fuji CR (N.C.C. Higashi)
    "ct": ["693_UNCR.dcm", "CT_small.dcm", "explicit_VR-UN.dcm", "eCT_Supplemental.dcm"],  # GE, NIH, Acme
    "mr": ["MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "overlay/examples_overlay.dcm"],  # Philips, Siemens
}


def build(out: Path) -> list[Path]:
    """Copy the files into ``out/<modality>/``; returns the copies."""
    copies = []
    for modality, names in EXTERNAL.items():
        folder = out / modality
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            # the two Siemens files share a SeriesInstanceUID but differ in size: separate folders
            src = Path(pydicom.data.get_testdata_file(Path(name).name, download=False) or "")
            if src.is_file():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                copies.append(Path(shutil.copy2(src, folder / name)))
    anatomical = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    if anatomical.is_file():
        copies.append(Path(shutil.copy2(anatomical, out / "mr" / "nibabel_anatomical.nii")))
    return copies


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "external_val")
    for path in build(target):
        print(path)
