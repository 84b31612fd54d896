"""The MONAI bundles medsr ships (installed as the ``medsr.bundles`` resource package)."""
