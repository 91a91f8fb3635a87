"""Reading and indexing an export: stage 1 of the pipeline (read → index).

Owns: the file kinds and streaming reader (``_read``, ``_scan``, ``_archive``; the export
file is opened through fsspec here), the raw-JSON parser (``_parse``, ``_fields``,
``_parse_geometry``), the columnar fast path and the index (``_columns``, ``_tables``,
``_build``, ``_schema``, ``index``, ``_indexing``), :func:`load_export` (``load``),
the ontology (``ontology``), the assets as raw JSON objects (``raw``), ``validate``
(inspect / validate) and the group keys and
asset filters (``groups``).

May import: the base layer only (``ango_torch.errors``, ``ango_torch.records``,
``ango_torch.limits``, ``ango_torch._progress``). No torch, no asset IO.
"""
