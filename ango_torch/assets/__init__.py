"""Bytes and pixels of the assets: stage 2 (fetch → decode).

Owns: :class:`~ango_torch.assets.fetch.AssetStore` (the one fsspec user for assets:
cache → ``root`` → the export's URL), HTTP(S) downloads (``_http``), local-file safety
(``_local``), signed-URL expiry (``expiry``), the layout of ``root``/cache paths
(``layout``), decoding and PNG writing (``decode``), ``prefetch``, and medical volume
reading/writing (``volume_io``: NRRD, NIfTI, DICOM).

May import: ``ango_torch.export`` and the base layer. Not ``targets`` (same stage).
"""
