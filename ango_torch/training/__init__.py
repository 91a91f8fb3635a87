"""Around the training loop: stage 3, beside ``datasets``.

Owns: :func:`~ango_torch.training.splits.split` (group-aware, deterministic splits),
batch samplers (``samplers``), the rank helpers (``ranks``) and the torchvision
``labels_getter`` (``sanitize``).

May import: ``export`` (group keys, the index) and the base layer. Not ``datasets``
(same stage), ``evaluation`` or ``cli``.
"""
