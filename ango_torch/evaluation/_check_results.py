"""Validation of COCO results before they reach pycocotools/faster-coco-eval.

Both backends fail on malformed results with untyped errors (``ValueError``,
``IndexError``, ``RuntimeError`` from C++), accept infinite boxes, or allocate a mask of
whatever ``size`` an RLE claims.  :func:`check_result` refuses such a result with an
:class:`~ango_torch.errors.EvaluationError` naming its index and field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import EvaluationError

__all__ = ["check_result"]


def _number(value: Any) -> bool:
    """A finite JSON number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_result(
    i: int, r: Mapping[str, Any], sizes: Mapping[int, tuple[int, int]], iou_types: Sequence[str]
) -> None:
    """Refuse result ``#i`` unless its fields are what COCO evaluation reads.

    ``image_id``/``category_id``: integers; ``score``: a finite number; ``bbox`` (where
    present or evaluated): four finite numbers, width and height ≥ 0; ``segmentation``
    (where ``"segm"`` is evaluated): polygons (lists of ≥ 3 finite ``x, y`` pairs) or an
    RLE of the image's ``[height, width]`` whose runs cover it exactly.

    Raises:
        EvaluationError: naming the result's index and the field.
    """

    def fail(field: str, message: str) -> EvaluationError:
        return EvaluationError(f"result #{i}, field {field!r}: {message}")

    for field in ("image_id", "category_id"):
        if not _int(r[field]):
            raise fail(field, f"expected an integer, got {r[field]!r:.60}")
    if not _number(r["score"]):
        raise fail("score", f"expected a finite number, got {r['score']!r:.60}")
    if "bbox" in r or "bbox" in iou_types:
        box = r["bbox"]
        if not isinstance(box, list) or len(box) != 4 or not all(map(_number, box)):
            raise fail("bbox", f"expected [x, y, width, height], finite numbers, got {box!r:.80}")
        if box[2] < 0 or box[3] < 0:
            raise fail("bbox", f"expected width and height ≥ 0, got {box!r:.80}")
    if "segm" in iou_types and r["image_id"] in sizes:
        _check_segmentation(r["segmentation"], sizes[r["image_id"]], fail)


def _check_segmentation(seg: Any, hw: tuple[int, int], fail: Any) -> None:
    h, w = hw
    if isinstance(seg, list):
        for k, poly in enumerate(seg):
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise fail(
                    "segmentation",
                    f"polygon [{k}]: expected a flat list of ≥ 3 x, y pairs, got {poly!r:.60}",
                )
            if not all(map(_number, poly)):
                raise fail("segmentation", f"polygon [{k}]: expected finite numbers")
        return
    if not isinstance(seg, Mapping):
        raise fail("segmentation", f"expected polygons or an RLE, got {seg!r:.60}")
    size = seg.get("size")
    if not isinstance(size, list) or size != [h, w]:
        raise fail("segmentation", f"expected an RLE of size [{h}, {w}], got size {size!r:.60}")
    counts = seg.get("counts")
    runs: list[int] | None
    if isinstance(counts, list):
        if not all(_int(c) and c >= 0 for c in counts):
            raise fail("segmentation", "RLE counts must be integers ≥ 0")
        runs = counts
    elif isinstance(counts, str | bytes):
        ascii_ = counts.isascii()
        data = counts.encode("ascii") if isinstance(counts, str) and ascii_ else counts
        runs = _decode_counts(data) if ascii_ and isinstance(data, bytes) else None
        if runs is None:
            raise fail("segmentation", f"unreadable compressed RLE counts {counts!r:.60}")
    else:
        raise fail("segmentation", f"expected RLE counts (list or string), got {counts!r:.60}")
    if sum(runs) != h * w:
        raise fail(
            "segmentation", f"RLE runs cover {sum(runs)} pixels, the image has {h}×{w} = {h * w}"
        )


def _decode_counts(data: bytes) -> list[int] | None:
    """pycocotools' compressed RLE string (``rleFrString``) → runs; ``None`` if malformed
    (a character outside ``'0'..'o'``, a truncated number, or a negative run)."""
    runs: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                return None
            c = data[p] - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return None
        runs.append(x)
    return runs
