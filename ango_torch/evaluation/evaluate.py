"""COCO evaluation of detection and instance-segmentation predictions.

:func:`predictions_to_coco` turns torchvision detection outputs into COCO results;
:func:`evaluate_coco` scores them against a ground truth (e.g. :func:`ango_torch.to_coco`
of the validation dataset) with pycocotools or faster-coco-eval and returns a
:class:`CocoMetrics`.  Semantic segmentation metrics live in :mod:`ango_torch.evaluation.metrics`.

Backend choice: ``backend="auto"`` uses faster-coco-eval when it is installed, else
pycocotools.  Measured with ``python benchmarks/evaluate.py`` (500 images x 20 polygon
instances, 10,028 jittered results, end to end through :func:`evaluate_coco`, 2 CPU
cores): bbox 1.15 s vs 0.23 s (4.9x), segm 1.12 s vs 0.49 s (2.3x), with identical AP,
AR and per-class AP (max difference 0).

Both are optional and imported only here: pycocotools comes with ``ango_torch[eval]``,
faster-coco-eval with ``pip install faster-coco-eval``.
pycocotools prints to stdout and warns under numpy 2; both are silenced around its calls.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import MissingDependencyError
from ._check_results import check_result
from .coco import clip_polygons, mask_to_rle
from .metrics import (
    CocoMetrics,
    EvaluationError,
    IouTypeMetrics,
    SegmentationMeter,
    SegmentationMetrics,
)

__all__ = [
    "CocoMetrics",
    "EvaluationError",
    "IouTypeMetrics",
    "MissingDependencyError",
    "SegmentationMeter",
    "SegmentationMetrics",
    "evaluate_coco",
    "predictions_to_coco",
]

BACKENDS = ("pycocotools", "faster_coco_eval")
#: The order ``backend="auto"`` tries; see the module docstring for the measurement.
AUTO_ORDER = ("faster_coco_eval", "pycocotools")
IOU_TYPES = ("bbox", "segm")
_NUMPY2_COPY = "__array__ implementation doesn't accept a copy keyword"
_INSTALL = {
    "pycocotools": "pip install ango_torch[eval]",
    "faster_coco_eval": "pip install faster-coco-eval",
}


# -------------------------------------------------------------------------- predictions


def predictions_to_coco(
    outputs: Mapping[int, Mapping[str, Any]] | Iterable[tuple[int, Mapping[str, Any]]],
    *,
    score_threshold: float = 0.0,
    mask_threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """torchvision detection outputs → COCO results (JSON-ready).

    Args:
        outputs: ``{image_id: output}`` or ``(image_id, output)`` pairs, where ``output``
            is a torchvision detection model's dict: ``"boxes"`` XYXY ``float [N, 4]`` in
            pixels, ``"labels"`` ``int64 [N]`` (= COCO ``category_id``), ``"scores"``
            ``float [N]`` and, for instance segmentation, ``"masks"``: probabilities
            ``float [N, 1, H, W]`` (Mask R-CNN) or ``[N, H, W]``, or binary masks.
            Tensors may live on any device.
        score_threshold: keep detections with ``score >= score_threshold``.
        mask_threshold: a floating-point mask pixel is foreground when ``> mask_threshold``;
            integer and bool masks are foreground where non-zero.

    Returns:
        One dict per detection: ``image_id``, ``category_id``, ``bbox`` (XYWH),
        ``score`` and, with masks, ``segmentation`` as RLE: compressed (``counts`` a str)
        when pycocotools is installed, else uncompressed.
    """
    items = outputs.items() if isinstance(outputs, Mapping) else outputs
    results: list[dict[str, Any]] = []
    for pair in items:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise EvaluationError(f"outputs: expected (image_id, output) pairs, got {pair!r:.80}")
        image_id, out = pair
        image_id = int(image_id)
        where = f"output for image_id {image_id}"
        if not isinstance(out, Mapping):
            raise EvaluationError(f"{where}: expected a dict, got {type(out).__name__}")
        missing = [k for k in ("boxes", "labels", "scores") if k not in out]
        if missing:
            raise EvaluationError(f"{where}: missing {missing}, expected boxes, labels, scores")
        boxes = _cpu(out["boxes"]).double()
        labels = _cpu(out["labels"]).long()
        scores = _cpu(out["scores"]).double()
        n = len(scores)
        if boxes.shape != (n, 4) or labels.shape != (n,) or scores.dim() != 1:
            raise EvaluationError(
                f"{where}: expected boxes [N, 4], labels [N], scores [N], got "
                f"{tuple(boxes.shape)}, {tuple(labels.shape)}, {tuple(scores.shape)}"
            )
        keep = scores >= score_threshold
        xywh = boxes[keep].clone()
        xywh[:, 2:] -= xywh[:, :2]
        segms = _encode_masks(out["masks"], keep, mask_threshold, where) if "masks" in out else None
        for j, (box, label, score) in enumerate(
            zip(xywh.tolist(), labels[keep].tolist(), scores[keep].tolist(), strict=True)
        ):
            result = {"image_id": image_id, "category_id": label, "bbox": box, "score": score}
            if segms is not None:
                result["segmentation"] = segms[j]
            results.append(result)
    return results


def _cpu(value: Any) -> torch.Tensor:
    return torch.as_tensor(value).detach().as_subclass(torch.Tensor).cpu()


def _encode_masks(
    masks: Any, keep: torch.Tensor, threshold: float, where: str
) -> list[dict[str, Any]]:
    m = _cpu(masks)
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.dim() != 3 or len(m) != len(keep):
        raise EvaluationError(
            f"{where}: masks must be [N, 1, H, W] or [N, H, W] with N={len(keep)}, "
            f"got {tuple(m.shape)}"
        )
    m = m[keep]
    binary = (m > threshold) if m.is_floating_point() else (m != 0)
    arr = binary.numpy()
    try:
        from pycocotools import mask as mask_api
    except ImportError:
        return [mask_to_rle(a) for a in arr]
    with _quiet():
        rles = mask_api.encode(np.asfortranarray(arr.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return list(rles)


# --------------------------------------------------------------------------- evaluation


class _Api(NamedTuple):
    name: str
    coco: Any
    make_eval: Callable[[Any, Any, str], Any]
    mask: Any


def _import(backend: str) -> _Api:
    try:
        if backend == "pycocotools":
            from pycocotools import mask as mask_api
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            return _Api(backend, COCO, COCOeval, mask_api)
        from faster_coco_eval import COCO as FCOCO
        from faster_coco_eval import COCOeval_faster
        from faster_coco_eval.core import mask as fmask

        def make(gt: Any, dt: Any, iou_type: str) -> Any:
            return COCOeval_faster(gt, dt, iou_type, print_function=lambda *a, **k: None)

        return _Api(backend, FCOCO, make, fmask)
    except ImportError as exc:
        raise MissingDependencyError(
            f"COCO evaluation with backend {backend!r} needs the {backend} package: "
            f"{_INSTALL[backend]}"
        ) from exc


def _resolve(backend: str) -> _Api:
    if backend in BACKENDS:
        return _import(backend)
    if backend != "auto":
        raise EvaluationError(f"backend: expected 'auto' or one of {BACKENDS}, got {backend!r}")
    for name in AUTO_ORDER:
        with contextlib.suppress(MissingDependencyError):
            return _import(name)
    raise MissingDependencyError(
        "COCO evaluation needs pycocotools (or faster-coco-eval): pip install ango_torch[eval]"
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pycocotools prints progress and, under numpy 2, warns from its Cython code."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NUMPY2_COPY, DeprecationWarning)
        yield


def _load(source: Any, what: str) -> Any:
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise EvaluationError(f"{what}: cannot read JSON from {str(source)!r}: {exc}") from exc
    return source


def evaluate_coco(
    gt: dict[str, Any] | str | os.PathLike[str],
    results: Sequence[Mapping[str, Any]] | str | os.PathLike[str],
    *,
    iou_types: Sequence[str] | None = None,
    backend: str = "auto",
) -> CocoMetrics:
    """COCO AP/AR of ``results`` against ``gt``.

    Args:
        gt: a COCO ground-truth dict (e.g. :func:`ango_torch.to_coco`) or a JSON path.
        results: COCO results (e.g. :func:`predictions_to_coco`) or a JSON path.  Masks may
            be compressed or uncompressed RLE or polygons.  Neither input is modified.
        iou_types: subset of ``("bbox", "segm")``; default ``"bbox"``, plus ``"segm"``
            unless some result lacks a ``segmentation``.
        backend: ``"pycocotools"``, ``"faster_coco_eval"`` or ``"auto"`` (see module doc).

    Every ground-truth image counts, with or without predictions; an empty ``results``
    scores 0 wherever there is ground truth.  For ``"segm"`` the result's mask area (not
    its box) decides small/medium/large, as in detectron2.
    """
    gt_d = _load(gt, "gt")
    res = _load(results, "results")
    if not isinstance(gt_d, dict) or not all(k in gt_d for k in ("images", "categories")):
        raise EvaluationError("gt: expected a COCO dict with 'images' and 'categories'")
    if not isinstance(res, Sequence) or isinstance(res, str | bytes):
        raise EvaluationError(f"results: expected a list of dicts, got {type(res).__name__}")
    if iou_types is None:
        with_masks = all(isinstance(r, Mapping) and "segmentation" in r for r in res)
        iou_types = IOU_TYPES if with_masks else ("bbox",)
    bad = [t for t in iou_types if t not in IOU_TYPES]
    if bad or not iou_types:
        raise EvaluationError(f"iou_types: expected a subset of {IOU_TYPES}, got {iou_types!r}")
    api = _resolve(backend)
    try:
        sizes = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in gt_d["images"]}
        cats = {int(c["id"]): str(c.get("name", c["id"])) for c in gt_d["categories"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise EvaluationError(
            f"gt: expected images with 'id', 'height', 'width' and categories with 'id', "
            f"got {exc!r}"
        ) from exc
    _check(res, sizes, cats, iou_types)
    with _quiet():
        coco_gt = api.coco()
        # shallow copies: COCOeval writes 'ignore' and RLE segmentations into them
        anns = [_clipped(dict(a), sizes) for a in gt_d.get("annotations", [])]
        coco_gt.dataset = {**gt_d, "annotations": anns}
        coco_gt.createIndex()
        by_type = {}
        for iou_type in iou_types:
            dts = [_result(r, iou_type, sizes, api.mask) for r in res]
            if dts:
                coco_dt = coco_gt.loadRes(dts)
            else:
                coco_dt = api.coco()
                coco_dt.dataset = {
                    "images": list(gt_d["images"]),
                    "categories": list(gt_d["categories"]),
                    "annotations": [],
                }
                coco_dt.createIndex()
            ev = api.make_eval(coco_gt, coco_dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            by_type[iou_type] = _summarize(ev, iou_type, cats)
    return CocoMetrics(by_type, api.name, len(sizes), len(res))


def _check(
    res: Sequence[Any], sizes: dict[int, Any], cats: dict[int, str], iou_types: Sequence[str]
) -> None:
    for i, r in enumerate(res):
        if not isinstance(r, Mapping):
            raise EvaluationError(f"result #{i}: expected a dict, got {type(r).__name__}")
        need = ["image_id", "category_id", "score", *(("segmentation",) * ("segm" in iou_types))]
        need += ["bbox"] * ("bbox" in iou_types)
        missing = [k for k in need if k not in r]
        if missing:
            raise EvaluationError(f"result #{i}: missing {missing} (evaluating {iou_types})")
        if r["image_id"] not in sizes:
            raise EvaluationError(
                f"result #{i}: image_id {r['image_id']!r} is not an image of the ground truth"
            )
        if r["category_id"] not in cats:
            raise EvaluationError(
                f"result #{i}: category_id {r['category_id']!r} is not a ground-truth "
                f"category (ids {sorted(cats)})"
            )
        check_result(i, r, sizes, iou_types)


def _result(r: Mapping[str, Any], iou_type: str, sizes: dict[int, Any], mask: Any) -> Any:
    out = {"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"]}
    if iou_type == "bbox":
        out["bbox"] = [float(v) for v in r["bbox"]]
        return out
    # no 'bbox' here: pycocotools would take the box area as the instance's area
    h, w = sizes[r["image_id"]]
    seg = r["segmentation"]
    if isinstance(seg, list):
        seg = clip_polygons(seg, (h, w))  # far-out vertices cost pycocotools gigabytes
        seg = mask.merge(mask.frPyObjects(seg, h, w)) if seg else _empty_rle(h, w)
    if isinstance(seg, Mapping) and isinstance(seg.get("counts"), list):
        seg = mask.frPyObjects(dict(seg), h, w)
    if not isinstance(seg, Mapping) or list(seg.get("size", ())) != [h, w]:
        raise EvaluationError(
            f"result for image_id {r['image_id']}: segmentation must be RLE of size "
            f"[{h}, {w}] (height, width) or polygons, got {str(seg)[:80]}"
        )
    out["segmentation"] = seg
    return out


def _empty_rle(h: int, w: int) -> dict[str, Any]:
    return {"size": [h, w], "counts": [h * w]}


def _clipped(ann: dict[str, Any], sizes: dict[int, tuple[int, int]]) -> dict[str, Any]:
    """A ground-truth annotation with polygons clipped near its image (see
    :func:`~ango_torch.evaluation.coco.clip_polygons`); others unchanged."""
    seg = ann.get("segmentation")
    image_id = ann.get("image_id")
    size = sizes.get(image_id) if isinstance(image_id, int) else None
    if isinstance(seg, list) and size is not None:
        clipped = clip_polygons(seg, size)
        if clipped is not seg:
            ann["segmentation"] = clipped or _empty_rle(*size)
    return ann


def _summarize(ev: Any, iou_type: str, cats: dict[int, str]) -> IouTypeMetrics:
    p = ev.params
    precision = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
    recall = np.asarray(ev.eval["recall"])  # [T, K, A, M]
    m = list(p.maxDets).index(100)
    t50, t75 = (int(np.argmin(np.abs(np.asarray(p.iouThrs) - v))) for v in (0.5, 0.75))
    area = {label: k for k, label in enumerate(p.areaRngLbl)}

    def mean(a: np.ndarray[Any, Any]) -> float:
        valid = a[a > -1]
        return float(valid.mean()) if valid.size else math.nan

    names = [cats[int(c)] for c in p.catIds]
    dupes = {n for n in names if names.count(n) > 1}
    per_class = {
        (f"{n} ({int(c)})" if n in dupes else n): mean(precision[:, :, k, area["all"], m])
        for k, (c, n) in enumerate(zip(p.catIds, names, strict=True))
    }
    return IouTypeMetrics(
        iou_type=iou_type,
        ap=mean(precision[:, :, :, area["all"], m]),
        ap50=mean(precision[t50, :, :, area["all"], m]),
        ap75=mean(precision[t75, :, :, area["all"], m]),
        ap_small=mean(precision[:, :, :, area["small"], m]),
        ap_medium=mean(precision[:, :, :, area["medium"], m]),
        ap_large=mean(precision[:, :, :, area["large"], m]),
        ar100=mean(recall[:, :, area["all"], m]),
        per_class_ap=per_class,
    )
