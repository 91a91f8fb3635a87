"""Training targets, pure (numpy, no IO, no torch): stage 2 (rasterize → targets).

Owns: boxes, polygon clipping and rasterization (``geometry``), brush maps
(``brush``), class lists (``classes``), which objects a sample keeps and the
accounting of what is left out (``selection``), the target arrays (``arrays``), and
voxel-brush label decoding and grid checks (``segnrrd``).

May import: ``ango_torch.export`` (the index, the ontology) and the base layer. Not
``assets`` (same stage).
"""
