"""Summaries and problem reports of an export (``ango-torch inspect`` / ``validate``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .export import AngoExport
from .ontology import Ontology
from .records import ToolKind

__all__ = ["Problem", "find_problems", "summarize"]

# How far outside the image (as a fraction of its size) coordinates may stray before
# they are reported; annotators routinely drag a few pixels past the edge.
OUTSIDE_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in an export."""

    code: str
    message: str
    asset_index: int | None = None
    asset: str | None = None
    object_id: str | None = None
    stage: str | None = None

    def __str__(self) -> str:
        where = []
        if self.asset is not None:
            where.append(f"asset {self.asset!r} (#{self.asset_index})")
        if self.stage is not None:
            where.append(f"stage {self.stage!r}")
        if self.object_id is not None:
            where.append(f"object {self.object_id!r}")
        return f"[{self.code}] {', '.join(where)}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _ring_area(pts: np.ndarray) -> float:
    if len(pts) < 3:
        return 0.0
    x, y = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64)
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def find_problems(export: AngoExport, *, ontology: Ontology | None = None) -> list[Problem]:
    """Every problem of every snapshot (the answer and each stage) of every asset."""
    idx = export.index
    out = [Problem("malformed", s.reason, s.index, s.asset, s.object_id) for s in export.skipped]
    known = set(ontology.titles()) if ontology is not None else None
    for a in range(len(idx)):
        name = idx.string(idx.asset_external_id[a])
        w, h = int(idx.asset_width[a]), int(idx.asset_height[a])

        def problem(
            code: str,
            msg: str,
            obj: str | None = None,
            stage: str | None = None,
            _a: int = a,
            _name: str | None = name,
        ) -> None:
            out.append(Problem(code, msg, _a, _name, obj, stage))

        if w <= 0 or h <= 0:
            problem("missing-size", "metadata.width/height missing: sizes come from decoding")
        extras = idx.object_extras(a)
        first = idx.first_object(a)
        for s in range(int(idx.asset_snap_start[a]), int(idx.asset_snap_end[a])):
            stage = idx.string(idx.snap_stage[s]) if s != idx.asset_snap_start[a] else None
            o0, o1 = int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s])
            ids = [str(extras[o - first][0]) for o in range(o0, o1)]
            for oid, n in Counter(ids).items():
                if n > 1:
                    problem("duplicate-id", f"objectId used by {n} objects", oid, stage)
            for o in range(o0, o1):
                oid = ids[o - o0]
                kind = ToolKind(int(idx.obj_kind[o]))
                title = idx.titles[int(idx.obj_title[o])]
                if kind is ToolKind.OTHER:
                    key = (extras[o - first][4] or [""])[0]
                    problem("unknown-tool", f"tool {key!r} is not understood", oid, stage)
                    continue
                if known is not None and title not in known:
                    problem("unknown-class", f"class {title!r} is not in the ontology", oid, stage)
                rings = idx.rings(o)
                if kind in (ToolKind.POLYGON, ToolKind.SEGMENTATION, ToolKind.ROTATED_BOUNDING_BOX):
                    outer = [r for r, _, hole in rings if not hole]
                    if not outer or any(len(r) < 3 for r in outer):
                        n = min((len(r) for r in outer), default=0)
                        problem(
                            "too-few-points",
                            f"{kind.key} ring has {n} points, expected ≥ 3",
                            oid,
                            stage,
                        )
                        continue
                    if sum(_ring_area(r) for r in outer) == 0:
                        problem("zero-area", f"{kind.key} has zero area", oid, stage)
                elif kind is ToolKind.BOUNDING_BOX:
                    x1, y1, x2, y2 = idx.obj_bbox[o]
                    if x2 <= x1 or y2 <= y1:
                        problem("zero-area", "bounding-box has zero width or height", oid, stage)
                if w > 0 and h > 0 and kind is not ToolKind.NER and kind is not ToolKind.PDF:
                    x1, y1, x2, y2 = (float(v) for v in idx.obj_bbox[o])
                    mx, my = OUTSIDE_MARGIN * w, OUTSIDE_MARGIN * h
                    if x1 < -mx or y1 < -my or x2 > w + mx or y2 > h + my:
                        problem(
                            "outside-image",
                            f"{kind.key} spans x {x1:.1f}..{x2:.1f}, y {y1:.1f}..{y2:.1f}, "
                            f"far outside the {w}×{h} image",
                            oid,
                            stage,
                        )
            rel = idx.extra(int(idx.snap_extra[s])).get("relations", [])
            idset = set(ids)
            for r in rel:
                refs = r.get("group") or [r.get("from"), r.get("to")]
                missing = [x for x in refs if x not in idset]
                if missing:
                    problem(
                        "dangling-relation",
                        f"relation {r.get('title')!r} points at missing objects {missing}",
                        r.get("objectId"),
                        stage,
                    )
    return out


def summarize(export: AngoExport, *, stage: str | None = None) -> dict[str, Any]:
    """Counts for ``ango-torch inspect``: assets, objects per class and tool, stages, ..."""
    idx = export.index
    rows = export.snapshot_rows(stage)
    sel = rows[rows >= 0]
    per_class: Counter[str] = Counter()
    per_tool: Counter[str] = Counter()
    n_class = n_rel = n_brush = 0
    for s in sel.tolist():
        o0, o1 = int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s])
        kinds = np.bincount(idx.obj_kind[o0:o1], minlength=len(ToolKind))
        for k, n in enumerate(kinds.tolist()):
            if n:
                per_tool[ToolKind(k).key] += n
        for t, n in Counter(idx.obj_title[o0:o1].tolist()).items():
            per_class[idx.titles[t]] += n
        extra = idx.extra(int(idx.snap_extra[s]))
        n_class += len(extra.get("classifications", ()))
        n_rel += len(extra.get("relations", ()))
        n_brush += idx.snap_brush[s] >= 0
    batches: Counter[str] = Counter()
    for a in range(len(idx)):
        batches.update(idx.extra(int(idx.asset_extra[a])).get("b", ()))
    known = int(((idx.asset_width > 0) & (idx.asset_height > 0)).sum())
    return {
        "source": export.source,
        "assets": len(idx),
        "skipped": len(export.skipped),
        "stage": stage or "answer",
        "assets_with_stage": len(sel),
        "objects": int(sum(per_tool.values())),
        "objects_per_class": dict(per_class.most_common()),
        "objects_per_tool": dict(per_tool.most_common()),
        "stages": export.stage_names(),
        "batches": dict(batches.most_common()),
        "image_sizes": {"known": known, "missing": len(idx) - known},
        "pages": int((idx.asset_page_end - idx.asset_page_start).sum()),
        "classifications": n_class,
        "relations": n_rel,
        "brush_masks": int(n_brush),
    }
