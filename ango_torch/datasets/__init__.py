"""Datasets: stage 3, where assets and targets meet as torch samples.

Owns: :class:`~ango_torch.datasets.dataset.AngoDataset` (``dataset``, with brush colour
discovery in ``_brush_colors``), batching (``batching``: ``collate_fn``, a sample's
tensors as views of one shared buffer), packed instance masks (``packed``:
``PackedMasks``, ``unpack_masks``) and drawing
samples (``preview``), medical volumes (``volume``: ``AngoVolumeDataset``;
``volume_slices``: 2D slices; ``volume_report``: ``inspect --volumes``), WebDataset
shards (``shard_writer``: ``write_shards``; ``shards``: ``AngoShards``). Video datasets
join here. (``DatasetReport``,
the accounting of what a dataset leaves out, is :mod:`ango_torch.targets.selection`'s.)

May import: ``assets``, ``targets``, ``export`` and the base layer. Not ``training``
(same stage), ``evaluation`` or ``cli``.
"""
