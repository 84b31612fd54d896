"""Rebuild medsr's ``sample_data/`` from its sources (see ATTRIBUTION.md).

Every file is copied unmodified and checked against the SHA-256 recorded below.

Sources: pydicom (test files), pydicom-data, nibabel (tests/data) — all installed with
``pip install pydicom pydicom-data nibabel`` — and the shared data folder of the
medsr workspace (``--shared``, default ``../shared/data`` relative to the repository),
which holds the Hannover chest X-ray PNGs and the TCIA Lung-PET-CT-Dx CT slices.

Usage::

    python sample_data/make_sample_data.py [--shared /path/to/shared/data] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CT_SERIES = {  # 8 contiguous 5 mm slices -> sha256
    "1-29.dcm": "a484bb0f843a8f8c886c3852c281e2f83f296a43b2c5647a4f81aa3d8c6fe19a",
    "1-30.dcm": "c6eb52fa8ea6d42ee5ca046e6f368cc26fe2b0daebad438dc6f571d9f1e1a67f",
    "1-31.dcm": "c687154697fc2d0221adbfa94044f878a097ae8caebe0f773323b463196e4216",
    "1-32.dcm": "cae0cacc78a8e77ab161f6f5d458c5bc7b727c602c5e540dd6f62936cddce6e3",
    "1-33.dcm": "99b7f111f1a7b988e722f45c5b3a3de97f06e18fa10e84d42f040504934335b5",
    "1-34.dcm": "2705f5a1c2f17a4e40dd265cd6dfe7da6379301e244c263181e563361e72d155",
    "1-35.dcm": "0d266934e3083f7ecc7e80f83d0a86c8901c5e6c3f3be9c892450c2a26259f6e",
    "1-36.dcm": "89d13babcc58adbfdda3d47edc3cd0b2f3b8d1ffd5a8b08b34161977be637d6d",
}

# target (relative to sample_data/) -> (source kind, source name, sha256)
FILES: dict[str, tuple[str, str, str]] = {
    "cxr_cr_rg1.dcm": ("pydicom", "RG1_UNCR.dcm", "946f28f48b9fbf360196a9b835c8fce83b0c654bf85a5107663c8a61df02e498"),
    "ct_small.dcm": ("pydicom", "CT_small.dcm", "3dd31e5cc835b3f2cdd46c9da1982f59251e78518fefa8163d914631c66437d6"),
    "mr_small.dcm": ("pydicom", "MR_small.dcm", "3f27d1c22f1a66e80d7bb7c911e8610fd0bb70325a76746a7adb1c0ddefcf2bb"),
    "mr_anatomical.nii": ("nibabel", "anatomical.nii", "1c089f37b6597a38bb4157a1e1b3f7f13f1bc9d4e7a8cfdfaf91d85cd8f66594"),
    "cxr_hannover_006f3a8a.png": ("shared", "cxr/hannover/png/006f3a8a.png", "c6957c4955ea7832d64a274f549071c697b7f094c00b6e2db43840b6d27b1b4b"),
    **{
        f"ct_series_lung_dx_a0001/{name}": ("shared", f"ct/lung_pet_ct_dx_A0001/{name}", digest)
        for name, digest in CT_SERIES.items()
    },
}

LICENSES: dict[str, tuple[str, str]] = {
    "licenses/pydicom_LICENSE.txt": ("dist", "pydicom"),
    "licenses/pydicom-data_LICENSE.txt": ("dist", "pydicom-data"),
    "licenses/nibabel_COPYING.txt": ("dist", "nibabel"),
    "licenses/hannover_CC-BY-3.0.txt": ("shared", "cxr/hannover/LICENSE"),
    "licenses/tcia_lung-pet-ct-dx_CC-BY-4.0.txt": ("shared", "ct/lung_pet_ct_dx_A0001/LICENSE"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source(kind: str, name: str, shared: Path) -> Path:
    if kind == "pydicom":
        from pydicom.data import get_testdata_file

        found = get_testdata_file(name)
        if found is None:
            raise SystemExit(f"{name} not found: pip install pydicom-data")
        return Path(found)
    if kind == "nibabel":
        import nibabel

        return Path(nibabel.__file__).parent / "tests" / "data" / name
    if kind == "shared":
        return shared / name
    if kind == "dist":
        from importlib.metadata import distribution

        dist = distribution(name)
        for f in dist.files or []:
            if f.name in ("LICENSE", "COPYING", "LICENSE.txt") or "licenses/" in str(f):
                return Path(dist.locate_file(f))
        raise SystemExit(f"no licence file found in the {name} distribution")
    raise ValueError(kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--check", action="store_true", help="only verify the existing files' checksums")
    args = parser.parse_args(argv)
    bad = 0
    for target, (kind, name, digest) in FILES.items():
        dest = HERE / target
        if not args.check:
            src = _source(kind, name, args.shared)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        got = _sha256(dest)
        if digest and got != digest:
            print(f"checksum mismatch: {target} {got} != {digest}", file=sys.stderr)
            bad += 1
    if not args.check:
        for target, (kind, name) in LICENSES.items():
            dest = HERE / target
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_source(kind, name, args.shared), dest)
    print(f"{len(FILES)} files {'checked' if args.check else 'written'}, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
