"""A ``labels_getter`` for ``torchvision.transforms.v2.SanitizeBoundingBoxes``.

``SanitizeBoundingBoxes`` removes degenerate boxes together with their masks and the
tensors its ``labels_getter`` returns.  Its default getter returns ``target["labels"]``
alone, so ``area`` and ``iscrowd`` keep the removed rows and no longer line up with
``boxes`` and ``labels``.  :func:`sanitize_labels_getter` returns every per-instance
tensor of an :class:`~ango_torch.AngoDataset` target, so all of them are filtered
together::

    v2.SanitizeBoundingBoxes(labels_getter=ango_torch.sanitize_labels_getter)

``masks`` (a ``tv_tensors.Mask`` ``[N, H, W]``) is filtered by the transform itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["INSTANCE_KEYS", "sanitize_labels_getter"]

INSTANCE_KEYS = ("labels", "area", "iscrowd", "track_ids", "frame_ids", "keyframe")
"""Target keys holding one row per instance (besides ``boxes`` and ``masks``)."""


def sanitize_labels_getter(inputs: Any) -> tuple[torch.Tensor, ...]:
    """Every per-instance tensor of the target in ``inputs`` (:data:`INSTANCE_KEYS`).

    Args:
        inputs: what ``SanitizeBoundingBoxes`` passes: ``(image, target)`` (or a longer
            tuple whose second item is the target), or the target dict itself.

    Returns:
        The target's tensors under :data:`INSTANCE_KEYS` that it has, ``labels`` first.

    Raises:
        ValueError: no target dict with ``"labels"`` in ``inputs`` (as torchvision's own
            getter does).
    """
    target = inputs
    if isinstance(inputs, tuple | list):
        target = inputs[1] if len(inputs) > 1 else None
    if not isinstance(target, Mapping) or "labels" not in target:
        raise ValueError(
            "sanitize_labels_getter: expected (image, target) or a target dict with "
            f"'labels', got {type(target).__name__}"
        )
    return tuple(
        target[k] for k in INSTANCE_KEYS if k in target and isinstance(target[k], torch.Tensor)
    )
