"""Summaries and problem reports of an export (``ango-torch inspect`` / ``validate``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..records import VOLUME_EXTENSIONS, ToolKind
from .load import AngoExport
from .ontology import Ontology

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


def _object_flags(
    export: AngoExport, ontology: Ontology | None
) -> dict[str, npt.NDArray[np.bool_]]:
    """Per object row of the index, whether each object-level check fails (vectorized)."""
    idx = export.index
    kinds = idx.obj_kind
    n = len(kinds)
    starts = idx.obj_ring_start
    ring_len = np.diff(idx.ring_vert)
    hole = idx.ring_hole
    has_rings = starts[1:] > starts[:-1]
    first_ring = starts[:-1][has_rings]
    n_outer = np.zeros(n, np.int64)
    min_outer = np.zeros(n, np.int64)
    outer_area = np.zeros(n, np.float64)
    if has_rings.any():
        n_outer[has_rings] = np.add.reduceat((~hole).astype(np.int64), first_ring)
        big = np.iinfo(np.int64).max
        min_outer[has_rings] = np.minimum.reduceat(np.where(hole, big, ring_len), first_ring)
        outer_area[has_rings] = np.add.reduceat(np.where(hole, 0.0, _ring_areas(idx)), first_ring)
    area_kind = np.isin(
        kinds,
        [int(ToolKind.POLYGON), int(ToolKind.SEGMENTATION), int(ToolKind.ROTATED_BOUNDING_BOX)],
    )
    other = kinds == int(ToolKind.OTHER)
    too_few = area_kind & ((n_outer == 0) | (min_outer < 3))
    box = idx.obj_bbox.astype(np.float64)
    flat = ~((box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1]))
    zero_area = (area_kind & ~too_few & (outer_area == 0)) | (
        (kinds == int(ToolKind.BOUNDING_BOX)) & flat
    )
    asset_of = np.repeat(idx.snap_asset, idx.snap_obj_end - idx.snap_obj_start)
    w = idx.asset_width[asset_of].astype(np.float64)
    h = idx.asset_height[asset_of].astype(np.float64)
    with np.errstate(invalid="ignore"):
        far = (
            (box[:, 0] < -OUTSIDE_MARGIN * w)
            | (box[:, 1] < -OUTSIDE_MARGIN * h)
            | (box[:, 2] > (1 + OUTSIDE_MARGIN) * w)
            | (box[:, 3] > (1 + OUTSIDE_MARGIN) * h)
        )
    text_kind = np.isin(kinds, [int(ToolKind.NER), int(ToolKind.PDF)])
    outside = (w > 0) & (h > 0) & far & ~text_kind & ~other & ~too_few
    flags = {
        "unknown-tool": other,
        "too-few-points": too_few & ~other,
        "zero-area": zero_area & ~other,
        "outside-image": outside,
    }
    if ontology is not None:
        known = set(ontology.titles())
        known_title = np.array([t in known for t in idx.titles] or [True], bool)
        flags["unknown-class"] = ~other & ~known_title[idx.obj_title] if n else np.zeros(0, bool)
    return flags


def _ring_areas(idx: Any) -> npt.NDArray[np.float64]:
    """Shoelace area of every ring of the index (0 for rings under 3 points)."""
    rv = idx.ring_vert
    ring_len = np.diff(rv)
    areas = np.zeros(len(ring_len), np.float64)
    live = ring_len >= 3
    if not live.any():
        return areas
    v = idx.verts.astype(np.float64)
    nxt = np.arange(1, len(v) + 1)
    ends = rv[1:][live] - 1
    nxt[ends] = rv[:-1][live]  # each ring closes on its first vertex
    nxt = np.minimum(nxt, len(v) - 1)
    cross = v[:, 0] * v[nxt, 1] - v[nxt, 0] * v[:, 1]
    # reduceat sums from one live ring's start to the next one's: the vertices of short
    # rings (points, 2-point polylines) in between must add nothing.
    cross[int(rv[0]) : int(rv[-1])][~np.repeat(live, ring_len)] = 0.0
    areas[live] = np.abs(np.add.reduceat(cross, rv[:-1][live])) / 2
    return areas


def _duplicate_ids(idx: Any) -> list[Problem]:
    """Assets sharing an externalId (up to case: one file on macOS/Windows) or an assetId."""
    names = [e or "" for e in idx.strings.get_many(idx.asset_external_id)]
    ids = [a or "" for a in idx.strings.get_many(idx.asset_asset_id)]
    out = []
    for code, keys in (
        ("duplicate-external-id", [n.casefold() or None for n in names]),
        ("duplicate-asset-id", [i or None for i in ids]),
    ):
        groups: dict[str | None, list[int]] = {}
        for a, key in enumerate(keys):
            groups.setdefault(key, []).append(a)
        for key, members in groups.items():
            if key is None or len(members) < 2:
                continue
            for a in members:
                others = [b for b in members if b != a]
                listed = ", ".join(f"#{b} {names[b]!r} (assetId {ids[b]!r})" for b in others[:5])
                more = f" and {len(others) - 5} more" if len(others) > 5 else ""
                if code == "duplicate-asset-id":
                    msg = f"assetId {ids[a]!r} also used by asset {listed}{more}"
                else:
                    same = "also used" if all(names[b] == names[a] for b in others) else "shared"
                    msg = (
                        f"externalId {same} (up to case) by asset {listed}{more}: it names no "
                        "single file; their images are laid out as _assets/<assetId>/<externalId>"
                    )
                out.append(Problem(code, msg, a, names[a]))
    return out


_MESSAGES = {
    "too-few-points": "{kind} ring has {n} points, expected ≥ 3",
    "zero-area": "{kind} has zero area",
    "unknown-class": "class {title!r} is not in the ontology",
}


def find_problems(export: AngoExport, *, ontology: Ontology | None = None) -> list[Problem]:
    """Every problem of every snapshot (the answer and each stage) of every asset.

    The object-level checks run vectorized over the whole index; only duplicate ids
    and relations are checked asset by asset.
    """
    idx = export.index
    out = [Problem("malformed", s.reason, s.index, s.asset, s.object_id) for s in export.skipped]
    if export.skipped_count > len(export.skipped):  # reasons kept: limits.max_skipped
        more = export.skipped_count - len(export.skipped)
        out.append(Problem("malformed", f"{more} more unreadable assets (reasons not kept)"))
    out += _duplicate_ids(idx)
    flags = _object_flags(export, ontology)
    order = ("unknown-tool", "unknown-class", "too-few-points", "zero-area", "outside-image")
    bad = np.zeros(len(idx.obj_kind), bool)
    for f in flags.values():
        bad |= f
    ring_len = np.diff(idx.ring_vert)
    for a in range(len(idx)):
        name = idx.string(idx.asset_external_id[a])
        w, h = int(idx.asset_width[a]), int(idx.asset_height[a])
        # A volume's grid comes from its file header, never from metadata.width/height.
        volume = int(idx.snap_medical_brush[int(idx.asset_snap_start[a])]) >= 0 or (
            (name or "").lower().endswith(VOLUME_EXTENSIONS)
        )
        if (w <= 0 or h <= 0) and not volume:
            out.append(
                Problem(
                    "missing-size",
                    "metadata.width/height missing: sizes come from decoding",
                    a,
                    name,
                )
            )
        extras = idx.object_extras(a)
        first = idx.first_object(a)
        for s in range(int(idx.asset_snap_start[a]), int(idx.asset_snap_end[a])):
            stage = idx.string(idx.snap_stage[s]) if s != idx.asset_snap_start[a] else None
            o0, o1 = int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s])
            ids = [str(extras[o - first][0]) for o in range(o0, o1)]
            pages = idx.obj_page[o0:o1].tolist()  # a video's objectId is a track: per frame
            for (oid, _page), count in Counter(zip(ids, pages, strict=True)).items():
                if count > 1:
                    out.append(
                        Problem(
                            "duplicate-id", f"objectId used by {count} objects", a, name, oid, stage
                        )
                    )
            for o in (np.flatnonzero(bad[o0:o1]) + o0).tolist():
                kind = ToolKind(int(idx.obj_kind[o]))
                for code in order:
                    if code not in flags or not flags[code][o]:
                        continue
                    if code == "unknown-tool":
                        key = (extras[o - first][4] or [""])[0]
                        if key == "bounding-box":  # a 3D box (records.BoundingBox3D)
                            continue
                        msg = f"tool {key!r} is not understood"
                    elif code == "outside-image":
                        x1, y1, x2, y2 = (float(v) for v in idx.obj_bbox[o])
                        msg = (
                            f"{kind.key} spans x {x1:.1f}..{x2:.1f}, y {y1:.1f}..{y2:.1f}, "
                            f"far outside the {w}×{h} image"
                        )
                    elif code == "zero-area" and kind is ToolKind.BOUNDING_BOX:
                        msg = "bounding-box has zero width or height"
                    else:
                        r0, r1 = int(idx.obj_ring_start[o]), int(idx.obj_ring_start[o + 1])
                        outer = [int(ring_len[r]) for r in range(r0, r1) if not idx.ring_hole[r]]
                        msg = _MESSAGES[code].format(
                            kind=kind.key,
                            n=min(outer, default=0),
                            title=idx.titles[int(idx.obj_title[o])],
                        )
                    out.append(Problem(code, msg, a, name, ids[o - o0], stage))
            rel = idx.extra(int(idx.snap_extra[s])).get("relations", [])
            idset = set(ids)
            for r in rel:
                refs = r.get("group") or [r.get("from"), r.get("to")]
                missing = [x for x in refs if x not in idset]
                if missing:
                    out.append(
                        Problem(
                            "dangling-relation",
                            f"relation {r.get('title')!r} points at missing objects {missing}",
                            a,
                            name,
                            r.get("objectId"),
                            stage,
                        )
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
        "skipped": export.skipped_count,
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
