"""DICOM networking: PACS locations as inputs and outputs, and the ``medsr serve`` node.

- :mod:`~medsr.pacs.locations`: DICOMweb (``http(s)://.../studies/<uid>[/series/<uid>]``)
  and DIMSE (``dicom://AET@HOST:PORT/...``) URLs;
- :mod:`~medsr.pacs.dicomweb`: QIDO-RS / WADO-RS / STOW-RS through ``dicomweb-client``;
- :mod:`~medsr.pacs.dimse`: C-FIND / C-GET / C-MOVE / C-STORE through ``pynetdicom``;
- :mod:`~medsr.pacs.remote`: ``medsr upscale`` with a PACS input or output, through the
  same upscale path as local folders;
- :mod:`~medsr.pacs.serve`: ``medsr serve``, a C-STORE SCP that upscales what it receives
  and forwards the derived series.

``dicomweb-client`` and ``pynetdicom`` are optional (``pip install 'medsr[pacs]'``).
"""

from __future__ import annotations

from .locations import DicomWebLocation, DimseLocation, is_remote, parse_location, series_label
from .remote import upscale_location

__all__ = ["DicomWebLocation", "DimseLocation", "is_remote", "parse_location", "series_label", "upscale_location"]
