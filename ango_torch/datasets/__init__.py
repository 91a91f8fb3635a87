"""Datasets: stage 3, where assets and targets meet as torch samples.

Owns: :class:`~ango_torch.datasets.dataset.AngoDataset` and its report (``dataset``,
``report``), and drawing samples (``preview``). Video, volume and shard datasets join
here.

May import: ``assets``, ``targets``, ``export`` and the base layer. Not ``training``
(same stage), ``evaluation`` or ``cli``.
"""
