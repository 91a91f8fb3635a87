"""Track reports of an export's videos for ``ango-torch inspect`` and ``validate``.

From the index alone (no decoding): per video its tracks, entries, whether it is
key-frames-only (a track with a frame gap between live entries), the frame gaps
interpolation fills, and problems: entries without a frame (``page``), duplicate
``(objectId, frame)`` entries, entries at or past ``metadata.frameTotal``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..export.load import AngoExport
from ..export.validate import Problem
from ..targets.selection import video_assets
from ..targets.tracks import asset_tracks

__all__ = ["print_videos", "video_problems", "video_reports"]


def video_reports(export: AngoExport) -> list[dict[str, Any]]:
    """One dict per video asset (its exported answer): ``asset``, ``index``, ``tracks``,
    ``entries``, ``stops``, ``key_frames_only``, ``gaps`` (frames interpolation fills),
    ``frame_total``, ``last_frame``, ``unplaced``, ``duplicates``, ``past_end``."""
    idx = export.index
    out = []
    for a in np.flatnonzero(video_assets(idx)).tolist():
        s = int(idx.asset_snap_start[a])
        rows = np.arange(int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s]), dtype=np.int64)
        tr = asset_tracks(idx, a, rows)
        meta = idx.extra(int(idx.asset_extra[a])).get("m") or {}
        total = meta.get("frameTotal") if isinstance(meta, dict) else None
        total = int(total) if isinstance(total, int | float) else -1
        live = tr.annotated_frames(interpolate=False)
        filled = tr.annotated_frames(interpolate=True)
        out.append(
            {
                "asset": idx.string(idx.asset_external_id[a]),
                "index": a,
                "tracks": len(tr.ids),
                "entries": len(tr),
                "stops": int(tr.stopped.sum()),
                "key_frames_only": tr.sparse,
                "gaps": int(len(filled) - len(live)),
                "frame_total": total,
                "last_frame": int(tr.frame.max()) if len(tr) else -1,
                "unplaced": len(tr.unplaced),
                "duplicates": len(tr.duplicates),
                "past_end": int((tr.frame >= total).sum()) if total > 0 else 0,
            }
        )
    return out


def video_problems(reports: list[dict[str, Any]]) -> list[Problem]:
    """Problems of :func:`video_reports`' videos (duplicate ``(objectId, frame)``
    entries are ``validate``'s ``duplicate-id``, checked per frame)."""
    out = []
    for r in reports:
        a, name = r["index"], r["asset"]
        if r["unplaced"]:
            msg = f"{r['unplaced']} tool entries without a frame (page): on no frame"
            out.append(Problem("video-entry-without-frame", msg, a, name))
        if r["past_end"]:
            msg = (
                f"{r['past_end']} entries at or past metadata.frameTotal = {r['frame_total']} "
                f"(last annotated frame {r['last_frame']})"
            )
            out.append(Problem("video-past-last-frame", msg, a, name))
    return out


def print_videos(reports: list[dict[str, Any]], out: Any) -> None:
    """The ``inspect`` lines of :func:`video_reports`."""
    if not reports:
        return
    print(f"videos       {len(reports)}", file=out)
    for r in reports:
        kind = "key frames only" if r["key_frames_only"] else "every frame"
        print(
            f"  {r['asset']}: {r['tracks']} tracks, {r['entries']} entries ({kind}; "
            f"{r['gaps']} frames interpolated), {r['stops']} stops, frames "
            f"0..{r['last_frame']} of {r['frame_total']}",
            file=out,
        )
