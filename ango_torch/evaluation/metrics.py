"""Metric records and the semantic segmentation meter.

:class:`CocoMetrics` holds what :func:`ango_torch.evaluation.evaluate.evaluate_coco` computes.
:class:`SegmentationMeter` computes per-class IoU, mIoU and pixel accuracy in pure torch:
it accumulates a ``[C, C]`` confusion matrix (rows = target class, columns = predicted
class) with one :func:`torch.bincount` per update, on the device of the inputs, so
evaluation on a GPU moves only the final matrix to the host.

Conventions, the same as the dataset's ``target["mask"]``: class ``0`` is background
and counts like any other class; ``ignore_index`` (255) pixels of the target are left
out, whatever was predicted there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import EvaluationError

__all__ = [
    "CocoMetrics",
    "EvaluationError",
    "IouTypeMetrics",
    "SegmentationMeter",
    "SegmentationMetrics",
]


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


# ------------------------------------------------------------------------ COCO results


@dataclass(frozen=True, slots=True)
class IouTypeMetrics:
    """COCO summary for one IoU type; every value in ``[0, 1]``, NaN where undefined
    (no ground truth in that area range or category; pycocotools reports ``-1``).

    ``per_class_ap`` maps category name → AP@[.5:.95] (name ``"name (id)"`` where two
    categories share a name).
    """

    iou_type: str
    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    ar100: float
    per_class_ap: dict[str, float] = field(default_factory=dict)

    _KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")

    def values(self) -> tuple[float, ...]:
        """The seven summary numbers, in the order of ``_KEYS``."""
        return (
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_small,
            self.ap_medium,
            self.ap_large,
            self.ar100,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; NaN becomes ``None``."""
        out: dict[str, Any] = {
            k: _nan_to_none(v) for k, v in zip(self._KEYS, self.values(), strict=True)
        }
        out["per_class_AP"] = {k: _nan_to_none(v) for k, v in self.per_class_ap.items()}
        return out


@dataclass(frozen=True, slots=True)
class CocoMetrics:
    """What :func:`~ango_torch.evaluation.evaluate.evaluate_coco` returns.

    ``metrics["bbox"].ap``, ``metrics["segm"].ap50``...
    """

    by_type: dict[str, IouTypeMetrics]
    backend: str
    num_images: int
    num_results: int

    def __getitem__(self, iou_type: str) -> IouTypeMetrics:
        if iou_type not in self.by_type:
            raise KeyError(f"iou type {iou_type!r} was not evaluated; have {list(self.by_type)}")
        return self.by_type[iou_type]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"backend", "num_images", "num_results", "bbox": {...}, ...}``."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "num_images": self.num_images,
            "num_results": self.num_results,
        }
        out.update({t: m.to_dict() for t, m in self.by_type.items()})
        return out

    def table(self) -> str:
        """A fixed-width table: summary rows, then per-class AP; ``-`` marks undefined."""
        types = list(self.by_type)
        first = next(iter(self.by_type.values()), None)
        names = list(first.per_class_ap) if first is not None else []
        width = max([12, *(len(n) for n in names)])
        head = f"{'':<{width}}" + "".join(f"{t:>9}" for t in types)
        rule = "-" * len(head)
        lines = [
            f"COCO evaluation ({self.backend}): {self.num_images} images, "
            f"{self.num_results} results",
            head,
            rule,
        ]
        for i, key in enumerate(IouTypeMetrics._KEYS):
            cells = "".join(_cell(self.by_type[t].values()[i]) for t in types)
            lines.append(f"{key:<{width}}{cells}")
        if names:
            lines += [rule, f"{'AP per class':<{width}}"]
            for name in names:
                cells = "".join(_cell(self.by_type[t].per_class_ap[name]) for t in types)
                lines.append(f"{name:<{width}}{cells}")
        return "\n".join(lines)


def _cell(value: float) -> str:
    return f"{'-':>9}" if math.isnan(value) else f"{value:9.3f}"


# ------------------------------------------------------------------------ segmentation


@dataclass(frozen=True, slots=True)
class SegmentationMetrics:
    """The result of :meth:`SegmentationMeter.compute`.

    Attributes:
        miou: mean IoU over the classes present (in target or prediction); NaN when no
            pixel was counted.
        pixel_accuracy: correctly classified pixels / counted (non-ignored) pixels.
        iou: per-class IoU, ``len == num_classes``; NaN for a class absent from both
            target and prediction.
        class_names: one name per class (``"0"``, ``"1"``, ... when none were given).
        confusion: ``int64 [C, C]`` on the CPU, rows = target, columns = prediction.
    """

    miou: float
    pixel_accuracy: float
    iou: tuple[float, ...]
    class_names: tuple[str, ...]
    confusion: torch.Tensor

    def table(self) -> str:
        """A fixed-width text table: one row per class (IoU, pixels), then the means."""
        width = max([len("pixel accuracy"), *(len(n) for n in self.class_names)])
        gt_pixels = self.confusion.sum(dim=1).tolist()
        lines = [f"{'class':<{width}}  {'IoU':>7}  {'pixels':>12}", "-" * (width + 23)]
        for name, iou, n in zip(self.class_names, self.iou, gt_pixels, strict=True):
            shown = "      -" if math.isnan(iou) else f"{100 * iou:7.2f}"
            lines.append(f"{name:<{width}}  {shown}  {n:>12d}")
        lines.append("-" * (width + 23))
        lines.append(f"{'mIoU':<{width}}  {100 * self.miou:7.2f}")
        lines.append(f"{'pixel accuracy':<{width}}  {100 * self.pixel_accuracy:7.2f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes ``None``; ``iou`` is keyed by class name."""
        return {
            "miou": _nan_to_none(self.miou),
            "pixel_accuracy": _nan_to_none(self.pixel_accuracy),
            "iou": {n: _nan_to_none(v) for n, v in zip(self.class_names, self.iou, strict=True)},
            "confusion": self.confusion.tolist(),
        }


class SegmentationMeter:
    """Accumulates a confusion matrix over batches of semantic predictions.

    Args:
        num_classes: ``C``, including background (``len(ds.classes)``).
        ignore_index: target value whose pixels are not counted.
        class_names: optional names for the table and ``to_dict`` (e.g. ``ds.classes``).

    Example::

        meter = SegmentationMeter(len(ds.classes), class_names=ds.classes)
        for images, targets in loader:
            meter.update(model(images)["out"], targets)   # logits [B, C, H, W]
        meter.all_reduce()                                 # no-op without distributed
        print(meter.compute().table())
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int = 255,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise EvaluationError(f"num_classes: expected an int ≥ 1, got {num_classes!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise EvaluationError(
                f"class_names: expected {num_classes} names, got {len(class_names)}"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = (
            tuple(str(n) for n in class_names)
            if class_names is not None
            else tuple(str(k) for k in range(num_classes))
        )
        self._local: torch.Tensor | None = None
        self._reduced: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget everything counted so far."""
        self._local = None
        self._reduced = None

    @property
    def confusion(self) -> torch.Tensor:
        """``int64 [C, C]``: this process's counts, or the sum over ranks after
        :meth:`all_reduce` (until the next :meth:`update`)."""
        if self._reduced is not None:
            return self._reduced
        if self._local is None:
            return torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64)
        return self._local

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count one image or batch.

        Args:
            pred: class indices, integer ``[H, W]`` or ``[B, H, W]``; or floating-point
                scores ``[C, H, W]`` / ``[B, C, H, W]`` (logits or probabilities),
                reduced by argmax over the class dimension.
            target: integer ``[H, W]`` or ``[B, H, W]`` (``target["mask"]``), values in
                ``[0, C)`` or ``ignore_index``.
        """
        if pred.is_floating_point():
            if pred.dim() != target.dim() + 1 or pred.shape[-3] != self.num_classes:
                raise EvaluationError(
                    f"pred: floating-point scores must be [C, H, W] or [B, C, H, W] with "
                    f"C={self.num_classes} for a target of shape {tuple(target.shape)}, "
                    f"got {tuple(pred.shape)}"
                )
            pred = pred.argmax(dim=-3)
        if pred.shape != target.shape or target.dim() not in (2, 3):
            raise EvaluationError(
                f"pred and target: expected the same shape, [H, W] or [B, H, W], got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if pred.is_floating_point() or target.is_floating_point() or target.dtype == torch.bool:
            raise EvaluationError(
                f"target: expected an integer tensor, got {target.dtype} (pred {pred.dtype})"
            )
        target = target.as_subclass(torch.Tensor).reshape(-1)
        pred = pred.as_subclass(torch.Tensor).reshape(-1).to(target.device)
        keep = target != self.ignore_index
        t = target[keep].long()
        p = pred[keep].long()
        c = self.num_classes
        if t.numel():
            bad_t = (t < 0) | (t >= c)
            bad_p = (p < 0) | (p >= c)
            if bool(bad_t.any()) or bool(bad_p.any()):
                which, values = ("target", t[bad_t]) if bad_t.any() else ("pred", p[bad_p])
                raise EvaluationError(
                    f"{which}: values must lie in [0, {c}) (or be ignore_index="
                    f"{self.ignore_index} in target), got {sorted(set(values.tolist()))[:5]}"
                )
        counts = torch.bincount(t * c + p, minlength=c * c).reshape(c, c)
        if self._local is None:
            self._local = counts
        else:
            self._local += counts.to(self._local.device)
        self._reduced = None

    def all_reduce(self) -> None:
        """Sum the confusion matrix over all ranks when ``torch.distributed`` is initialized.

        Every rank must call it (it is a collective). Afterwards :meth:`compute` reports
        the global counts until the next :meth:`update`; calling it twice does not count
        anything twice. With the NCCL backend a CPU matrix travels through the current
        CUDA device.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        local = self._local
        if local is None:
            local = torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64)
        total = local.clone()
        if dist.get_backend() == "nccl" and total.device.type != "cuda":
            total = total.cuda()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        self._reduced = total.to(local.device)

    def compute(self) -> SegmentationMetrics:
        """IoU per class, mIoU over present classes, pixel accuracy (see the class doc)."""
        cm = self.confusion.detach().to("cpu", torch.int64)
        tp = cm.diag().double()
        union = cm.sum(dim=0).double() + cm.sum(dim=1).double() - tp
        present = union > 0
        iou = torch.where(present, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        total = float(cm.sum())
        miou = float(iou[present].mean()) if bool(present.any()) else math.nan
        accuracy = float(tp.sum()) / total if total else math.nan
        return SegmentationMetrics(
            miou=miou,
            pixel_accuracy=accuracy,
            iou=tuple(float(v) for v in iou),
            class_names=self.class_names,
            confusion=cm,
        )
