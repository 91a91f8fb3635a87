"""``write_shards``: an export as WebDataset ``.tar`` shards plus ``index.json``.

One sample per image asset and per annotated page of a multi-page asset (an asset's
pages stay in one shard), keyed ``%08d`` (its :class:`AngoDataset` sample index; video
assets are left out and listed in ``skipped``): ``<key>.<ext>`` the original image bytes
(no re-encode), ``<key>.json`` the asset's own export record (URLs replaced by member
names; enough to rebuild every task's target) and ``<key>.brush.png`` the answer's
brush mask where there is one.  With ``split_by``, each split is such a set in its own
folder.  Tar members are plain (ustar) with fixed mtime, owner and mode, in a
fixed order, so the same export gives byte-identical shards.  Each shard is streamed
to a temporary name, sample by sample, and renamed once complete; ``_progress.json``
lists the finished ones, so an interrupted run continues where it stopped.  Memory:
the export's index plus the current shard's records as compact JSON (never the
shard's images, nor a parsed record per asset).

Next to each shard, ``index/<shard>.npz`` holds the shard's stored records already
parsed and checked, as the columns of an :class:`~ango_torch.export.index.ExportIndex`
(a deterministic, uncompressed ``.npz``): :class:`~ango_torch.AngoShards` builds its
targets from it instead of re-parsing each ``.json`` member every epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._progress import progress
from ..errors import AngoTorchError, where
from ..export.groups import GroupBy, group_keys, unit_hash
from ..export.index import ExportIndex
from ..export.raw import iter_asset_json
from ._shard_format import (
    FORMAT_VERSION,
    _index_bytes,
    _member,
    _Records,
    _TarStream,
    index_name,
    read_index,
)
from .dataset import AngoDataset

__all__ = ["FORMAT_VERSION", "index_name", "parse_size", "read_index", "write_shards"]

PROGRESS = "_progress.json"
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_IMAGE_EXTS = {"jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp"}


def parse_size(text: str | int) -> int:
    """``"512MB"`` → ``512_000_000`` (B, KB, MB, GB decimal; KiB, MiB, GiB binary)."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
        if not m or m[2].upper() not in _UNITS:
            raise ValueError(f"shard size {text!r}: expected e.g. 512MB, 1GB, 64MiB")
        value = int(float(m[1]) * _UNITS[m[2].upper()])
    if value <= 0:
        raise ValueError(f"shard size must be positive, got {text!r}")
    return value


def _ext(external_id: str, data: bytes) -> str:
    ext = external_id.rpartition(".")[2].lower() if "." in external_id else ""
    if ext in _IMAGE_EXTS:
        return "jpg" if ext == "jpeg" else ext
    for magic, name in ((b"\x89PNG", "png"), (b"\xff\xd8", "jpg"), (b"GIF8", "gif")):
        if data.startswith(magic):
            return name
    return "img"


def _class_info(ds: AngoDataset) -> dict[str, Any]:
    cm = ds.class_map
    colors = {f"#{r:02x}{g:02x}{b:02x}": cm.titles[k] for (r, g, b), k in cm.brush.items()}
    for (r, g, b), title in cm.brush_excluded.items():
        colors[f"#{r:02x}{g:02x}{b:02x}"] = title
    return {"classes": list(cm.titles), "brush_colors": dict(sorted(colors.items()))}


def _write(fs: Any, path: str, data: bytes) -> None:
    """Write ``path`` whole: to a temporary name first, then renamed."""
    tmp = f"{path}.tmp"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def write_shards(
    export: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    out: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    shard_size: int | str = "512MB",
    ontology: Any = None,
    stage: str | None = None,
    storage_options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_local_urls: bool = False,
    show_progress: bool | None = None,
    split_by: GroupBy | None = None,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``export`` as WebDataset shards and ``index.json`` under ``out``.

    Args:
        export: path/fsspec URL of the export (streamed), or a list of asset dicts.
        out: destination folder or fsspec URL.
        root, storage_options, cache_dir, allow_local_urls: as for :class:`AngoDataset`
            (images and brush masks come through its :class:`AssetStore`).
        shard_size: target bytes per shard (``"512MB"``); a shard closes before the
            sample that would take it over (a single larger sample gets its own shard).
        ontology: as for :class:`AngoDataset`; fixes the class lists stored in the index.
        stage: shard this stage of ``stageHistory`` (its brush masks; assets without
            it are skipped) instead of the exported answer; recorded as ``stage``.
        show_progress: a progress bar (default: when stderr is a terminal).
        split_by: write leak-free splits instead of one set: the assets are split as
            :func:`ango_torch.split` splits them (``"asset"``, ``"batch"``,
            ``"metadata:<key>"``, ``"video"`` or a callable; no group straddles two
            splits) and each split's shards and ``index.json`` go to ``out/<name>/``;
            ``out/splits.json`` lists them.
        fractions: ``{name: fraction}`` of the splits (default ``train=0.8, val=0.2``).
        seed: the split's hash seed.

    Returns:
        The ``index.json`` content: ``format_version``, ``export_sha256`` (of the
        records as stored), ``samples``, ``shards`` (``[{"name", "samples", "bytes"}]``),
        ``tasks`` (``{task: {"classes", "brush_colors"}}``) and ``skipped``
        (``[{"index", "asset", "reason"}]``: video assets, unreadable ones); with
        ``split_by``, the ``splits.json`` content (``splits``: ``{name: {"index",
        "samples", "assets"}}`` and ``split``: ``by``, ``seed``, ``fractions``).
    """
    import fsspec

    limit = parse_size(shard_size)
    fs, base = fsspec.core.url_to_fs(os.fspath(out), **(storage_options or {}))
    kw: dict[str, Any] = dict(
        root=root,
        ontology=ontology,
        stage=stage,
        storage_options=storage_options,
        cache_dir=cache_dir,
        allow_local_urls=allow_local_urls,
    )
    with warnings.catch_warnings():  # the readers report what each task leaves out
        warnings.simplefilter("ignore")
        ds = AngoDataset(export, task="detection", **kw)
        tasks = {"detection": _class_info(ds)}
        for task in ("instance", "semantic"):
            tasks[task] = _class_info(AngoDataset(ds.export, task=task, **kw))
    idx = ds.export.index
    skipped: list[dict[str, Any]] = [
        {"index": a, "asset": n, "reason": r} for a, n, r in ds.report.skipped_assets
    ]
    # each asset's first sample and sample count (0: none); arrays, not dicts, for 1M assets
    samples = np.asarray(ds._samples, np.int64).reshape(-1, 3)
    first = np.searchsorted(samples[:, 0], np.arange(len(idx)))
    count = np.searchsorted(samples[:, 0], np.arange(len(idx)), side="right") - first
    for a in np.flatnonzero(ds._video.is_video & (count > 0)).tolist():
        name = idx.string(idx.asset_external_id[a])
        skipped.append({"index": a, "asset": name, "reason": "video asset"})
        count[a] = 0
    part: dict[str, Any] = dict(ds=ds, tasks=tasks, limit=limit, first=first, count=count)
    part |= dict(stage=stage, storage_options=storage_options, show_progress=show_progress)
    if split_by is None:
        return _write_part(export, fs, base, skipped=skipped, **part)
    fractions = dict(fractions or {"train": 0.8, "val": 0.2})
    for name, f in fractions.items():
        if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name) or name == "index":
            raise ValueError(f"split name {name!r}: use letters, digits, _ - . (not 'index')")
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1:
            raise ValueError(f"fractions[{name!r}]: expected a number in [0, 1], got {f!r}")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r}")
    sides = _split_sides(idx, fractions, split_by, seed)
    label = split_by if isinstance(split_by, str) else getattr(split_by, "__name__", "callable")
    top: dict[str, Any] = {"format_version": FORMAT_VERSION, "splits": {}}
    top["split"] = {"by": label, "seed": seed, "fractions": fractions}
    for name, positions in sides.items():
        keep = np.zeros(len(idx), bool)
        keep[np.asarray(positions, np.int64)] = True
        mine = [s for s in skipped if keep[s["index"]]]
        split_info = {"name": name, **top["split"]}
        index = _write_part(
            export, fs, f"{base}/{name}", skipped=mine, keep=keep, split=split_info, **part
        )
        top["splits"][name] = {
            "index": f"{name}/index.json",
            "samples": index["samples"],
            "assets": int(keep.sum()),
        }
    _write(fs, f"{base}/splits.json", json.dumps(top, indent=1, sort_keys=True).encode())
    return top


def _split_sides(
    idx: ExportIndex, fractions: dict[str, float], by: GroupBy, seed: int
) -> dict[str, list[int]]:
    """The asset positions of each split, assigned as :func:`ango_torch.split` assigns
    them (unstratified): a group's side is where ``unit_hash(seed, group)`` falls in the
    cumulative fractions, so no group straddles two splits."""
    keys, _ = group_keys(idx, range(len(idx)), by)
    names, cum = list(fractions), np.cumsum(list(fractions.values())).tolist()
    sides: dict[str, list[int]] = {name: [] for name in names}
    for a in range(len(idx)):
        u = unit_hash(seed, keys[a])
        sides[next((n for n, c in zip(names, cum, strict=True) if u < c), names[-1])].append(a)
    return sides


def _write_part(
    export: Any,
    fs: Any,
    base: str,
    *,
    ds: AngoDataset,
    tasks: dict[str, Any],
    limit: int,
    first: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
    stage: str | None,
    skipped: list[dict[str, Any]],
    storage_options: dict[str, Any] | None,
    show_progress: bool | None,
    keep: npt.NDArray[np.bool_] | None = None,
    split: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the shards and ``index.json`` of the assets ``keep`` (all) under ``base``."""
    idx = ds.export.index
    fs.makedirs(f"{base}/index", exist_ok=True)
    done = _resume_state(fs, base, limit)
    shards: list[dict[str, Any]] = done["shards"]
    resume_at = sum(s["samples"] for s in shards)
    digest = hashlib.sha256()
    # One shard at a time, streamed: its members go to the file as they come; only its
    # records' compact JSON (for its index) and the index's numpy columns are held.
    tar: _TarStream | None = None
    stored = _Records()  # the shard's records, as its .json members hold them
    size, in_shard, n = 0, 0, 0

    def flush() -> None:
        nonlocal tar, stored, size, in_shard
        assert tar is not None
        name = f"shard-{len(shards):06d}.tar"
        _write(fs, f"{base}/{index_name(name)}", _index_bytes(stored))
        nbytes = tar.close()
        shards.append({"name": name, "samples": in_shard, "bytes": nbytes})
        state = {"shard_size": limit, "shards": shards, "sha256_prefix": digest.hexdigest()}
        _write(fs, f"{base}/{PROGRESS}", json.dumps(state).encode())
        tar, stored, size, in_shard = None, _Records(), 0, 0

    records = iter_asset_json(export, storage_options=storage_options)
    bar = progress(records, desc="shards", total=len(idx), enabled=show_progress)
    try:
        for a, record in enumerate(bar):
            k = int(count[a]) if keep is None or keep[a] else 0
            if k == 0:
                continue
            i0 = int(first[a])
            name = idx.string(idx.asset_external_id[a])
            label = where(asset=name, index=a)
            if record.get("externalId") != name:
                raise AngoTorchError(f"{label}: the export changed while it was read")
            key = f"{i0:08d}"
            if n < resume_at:  # in a shard already written: only its record's hash counts
                digest.update(_record_bytes(record, key, "", False))
                n += k
                if n >= resume_at and digest.hexdigest() != done["sha256_prefix"]:
                    raise AngoTorchError(
                        f"{base}: {PROGRESS} is from another export or version; "
                        "remove the folder's shards to start again"
                    )
                continue
            meta, asset_members = _asset_members(ds, a, i0, k, record, key, name)
            extra = sum(512 + -(-len(d) // 512) * 512 for _, d in asset_members)
            if tar is not None and size + extra + 1024 > limit:
                flush()
            digest.update(_record_bytes(record, key, "", False))
            if tar is None:
                tar = _TarStream(fs, f"{base}/shard-{len(shards):06d}.tar")
            tar.add(asset_members)
            stored.append(meta)
            size += extra
            in_shard += k
            n += k
        if tar is not None:
            flush()
    finally:
        if tar is not None:  # interrupted: the unfinished shard stays a .tmp
            tar.abandon()
    index = {
        "format_version": FORMAT_VERSION,
        "export_sha256": digest.hexdigest(),
        "samples": n,
        "shards": shards,
        "tasks": tasks,
        "skipped": sorted(skipped, key=lambda x: x["index"]),
        "stage": stage,
    }
    if split is not None:
        index["split"] = split
    _write(fs, f"{base}/index.json", json.dumps(index, indent=1, sort_keys=True).encode())
    if fs.exists(f"{base}/{PROGRESS}"):  # none when no shard was written
        fs.rm(f"{base}/{PROGRESS}")
    return index


def _asset_members(
    ds: AngoDataset, a: int, i0: int, k: int, record: dict[str, Any], key: str, name: str | None
) -> tuple[bytes, list[tuple[tarfile.TarInfo, bytes]]]:
    """Asset ``a``'s stored record (compact JSON) and its ``k`` samples' tar members."""
    idx = ds.export.index
    s = int(ds._samples[i0, 2])
    brush = ds._brush_bytes(a, s) if idx.snap_brush[s] >= 0 else None
    pages = int(ds._samples[i0, 1]) >= 0  # a multi-page asset: one sample per page
    images = [ds._fetch_image(i) for i in range(i0, i0 + k)]
    exts = [_ext("" if pages else name or "", image) for image in images]
    keys = [f"{i:08d}" for i in range(i0, i0 + k)]
    rec = dict(record)
    if pages:  # each page's URL becomes its sample's image member (unannotated: a name)
        page_of = {int(ds._samples[i, 1]): j for j, i in enumerate(range(i0, i0 + k))}
        n_pages = int(idx.asset_page_end[a] - idx.asset_page_start[a])
        rec["dataset"] = [
            f"{keys[page_of[p]]}.{exts[page_of[p]]}" if p in page_of else f"page-{p}"
            for p in range(n_pages)
        ]
    meta = _record_bytes(rec, key, "" if pages else exts[0], brush is not None)
    members = []
    for kk, ext, image in zip(keys, exts, images, strict=True):
        members += [_member(f"{kk}.{ext}", image), _member(f"{kk}.json", meta)]
        if brush is not None:
            members.append(_member(f"{kk}.brush.png", brush))
    return meta, members


def _record_bytes(record: dict[str, Any], key: str, ext: str, brush: bool) -> bytes:
    """The compact JSON of a sample's record; URLs become member names (or "")."""
    rec = dict(record)
    rec["asset"] = f"{key}.{ext}" if ext else ""
    task = rec.get("task")
    if isinstance(task, dict) and "brushDataUrl" in task:
        rec["task"] = {**task, "brushDataUrl": f"{key}.brush.png" if brush else ""}
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _resume_state(fs: Any, base: str, limit: int) -> dict[str, Any]:
    """The finished shards of an interrupted run (none when there was none)."""
    fresh: dict[str, Any] = {"shards": [], "sha256_prefix": ""}
    path = f"{base}/{PROGRESS}"
    if not fs.exists(path):
        return fresh
    with fs.open(path, "rb") as f:
        state = json.loads(f.read())
    if state.get("shard_size") != limit:
        return fresh
    for shard in state["shards"]:
        p = f"{base}/{shard['name']}"
        if not fs.exists(p) or fs.size(p) != shard["bytes"]:
            return fresh
        if not fs.exists(f"{base}/{index_name(shard['name'])}"):
            return fresh
    return dict(state)
