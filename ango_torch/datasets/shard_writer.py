"""``write_shards``: an export as WebDataset ``.tar`` shards plus ``index.json``.

One sample per image asset, keyed ``%08d`` (its position in the shards, which is its
:class:`AngoDataset` sample index): ``<key>.<ext>`` the original image bytes (no
re-encode), ``<key>.json`` the asset's own export record (URLs replaced by member names;
enough to rebuild every task's target, as :class:`~ango_torch.AngoShards` does by
reading it as a one-asset export) and ``<key>.brush.png`` the answer's brush mask where
there is one.  Tar members are plain (ustar) with fixed mtime, owner and mode, in a
fixed order, so the same export gives byte-identical shards.  Each shard is written to
a temporary name and renamed; ``_progress.json`` lists the finished ones, so an
interrupted run continues where it stopped.

Next to each shard, ``index/<shard>.npz`` holds the shard's stored records already
parsed and checked, as the columns of an :class:`~ango_torch.export.index.ExportIndex`
(a deterministic, uncompressed ``.npz``): :class:`~ango_torch.AngoShards` builds its
targets from it instead of re-parsing each ``.json`` member every epoch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._progress import progress
from ..assets.layout import brush_content_key, brush_stage_key
from ..errors import AngoTorchError, where
from ..export.index import ExportIndex
from ..export.load import load_export
from ..export.raw import iter_asset_json
from .dataset import AngoDataset

__all__ = ["FORMAT_VERSION", "index_name", "parse_size", "read_index", "write_shards"]

FORMAT_VERSION = 2  # 2: a parsed index per shard (index/<shard>.npz)
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


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, data


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


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


def index_name(shard: str) -> str:
    """The path, relative to the shards' folder, of ``shard``'s parsed index."""
    return f"index/{shard}.npz"


def _index_bytes(records: list[dict[str, Any]]) -> bytes:
    """The :class:`ExportIndex` of ``records`` as an ``.npz`` with fixed member times
    (``np.savez`` stamps the clock), so the same records give the same bytes."""
    index = load_export(records, progress_bar=False).index
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, value in sorted(index.arrays.items()):
            column = io.BytesIO()
            np.save(column, np.ascontiguousarray(value), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0)), column.getvalue())
    return buf.getvalue()


def read_index(data: bytes, label: str) -> ExportIndex:
    """The :class:`ExportIndex` stored by :func:`_index_bytes` (``label`` names it).

    Raises:
        ExportFormatError: unreadable, or written by another version of the parser.
    """
    from ..errors import ExportFormatError
    from ..export.index import SCHEMA

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            index = ExportIndex({k: z[k] for k in z.files})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ExportFormatError(f"{label}: unreadable shard index ({exc})") from exc
    if index.schema != SCHEMA:
        raise ExportFormatError(
            f"{label}: written by another version of the parser (schema "
            f"{index.schema or 'none'!r}, expected {SCHEMA!r}); write the shards again"
        )
    return index


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

    Returns:
        The ``index.json`` content: ``format_version``, ``export_sha256`` (of the
        records as stored), ``samples``, ``shards`` (``[{"name", "samples", "bytes"}]``),
        ``tasks`` (``{task: {"classes", "brush_colors"}}``) and ``skipped``
        (``[{"index", "asset", "reason"}]``: multi-page and video assets, unreadable).
    """
    import fsspec

    limit = parse_size(shard_size)
    fs, base = fsspec.core.url_to_fs(os.fspath(out), **(storage_options or {}))
    fs.makedirs(f"{base}/index", exist_ok=True)
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
    # sample and snapshot row of each asset (-1: none); arrays, not dicts, for 1M assets
    samples = np.asarray(ds._samples, np.int64).reshape(-1, 3)
    single = samples[:, 1] < 0
    sample_of = np.full(len(idx), -1, np.int64)
    snap_of = np.full(len(idx), -1, np.int64)
    sample_of[samples[single, 0]] = np.flatnonzero(single)
    snap_of[samples[single, 0]] = samples[single, 2]
    for a in np.unique(samples[~single, 0]).tolist():
        name = idx.string(idx.asset_external_id[a])
        skipped.append({"index": a, "asset": name, "reason": "multi-page asset"})
    done = _resume_state(fs, base, limit)
    shards: list[dict[str, Any]] = done["shards"]
    resume_at = sum(s["samples"] for s in shards)
    digest = hashlib.sha256()
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    stored: list[dict[str, Any]] = []  # the shard's records, as its .json members hold them
    size, count, n = 0, 0, 0

    def flush() -> None:
        nonlocal members, stored, size, count
        name = f"shard-{len(shards):06d}.tar"
        _write(fs, f"{base}/{index_name(name)}", _index_bytes(stored))
        data = _tar(members)
        _write(fs, f"{base}/{name}", data)
        shards.append({"name": name, "samples": count, "bytes": len(data)})
        state = {"shard_size": limit, "shards": shards, "sha256_prefix": digest.hexdigest()}
        _write(fs, f"{base}/{PROGRESS}", json.dumps(state).encode())
        members, stored, size, count = [], [], 0, 0

    records = iter_asset_json(export, storage_options=storage_options)
    bar = progress(records, desc="shards", total=len(idx), enabled=show_progress)
    for a, record in enumerate(bar):
        i, s = int(sample_of[a]), int(snap_of[a])
        if i < 0:
            continue
        label = where(asset=idx.string(idx.asset_external_id[a]), index=a)
        if record.get("externalId") != idx.string(idx.asset_external_id[a]):
            raise AngoTorchError(f"{label}: the export changed while it was read")
        key = f"{n:08d}"
        if n < resume_at:  # in a shard already written: only its record's hash counts
            digest.update(_record_bytes(record, key, "", False))
            n += 1
            if n == resume_at and digest.hexdigest() != done["sha256_prefix"]:
                raise AngoTorchError(
                    f"{out}: {PROGRESS} is from another export or version; "
                    "remove the folder's shards to start again"
                )
            continue
        image = ds._fetch_image(i)
        ext = _ext(idx.string(idx.asset_external_id[a]) or "", image)
        brush = _brush_bytes(ds, a, s) if idx.snap_brush[s] >= 0 else None
        meta = _record_bytes(record, key, ext, brush is not None)
        sample = [_member(f"{key}.{ext}", image), _member(f"{key}.json", meta)]
        if brush is not None:
            sample.append(_member(f"{key}.brush.png", brush))
        extra = sum(512 + -(-len(d) // 512) * 512 for _, d in sample)
        if members and size + extra + 1024 > limit:
            flush()
        digest.update(_record_bytes(record, key, "", False))
        members += sample
        stored.append(json.loads(meta))
        size += extra
        count += 1
        n += 1
    if members:
        flush()
    index = {
        "format_version": FORMAT_VERSION,
        "export_sha256": digest.hexdigest(),
        "samples": n,
        "shards": shards,
        "tasks": tasks,
        "skipped": sorted(skipped, key=lambda x: x["index"]),
        "stage": stage,
    }
    _write(fs, f"{base}/index.json", json.dumps(index, indent=1, sort_keys=True).encode())
    fs.rm(f"{base}/{PROGRESS}")
    return index


def _record_bytes(record: dict[str, Any], key: str, ext: str, brush: bool) -> bytes:
    """The compact JSON of a sample's record; URLs become member names (or "")."""
    rec = dict(record)
    rec["asset"] = f"{key}.{ext}" if ext else ""
    task = rec.get("task")
    if isinstance(task, dict) and "brushDataUrl" in task:
        rec["task"] = {**task, "brushDataUrl": f"{key}.brush.png" if brush else ""}
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _brush_bytes(ds: AngoDataset, a: int, s: int) -> bytes:
    idx = ds.export.index
    name = idx.string(idx.asset_external_id[a])
    return ds.store.fetch(
        asset_id=idx.string(idx.asset_asset_id[a]) or "",
        external_id=name or "",
        url=idx.string(idx.snap_brush[s]),
        kind="brush",
        stage_key=brush_stage_key(idx, s),
        content_key=brush_content_key(idx, s),
        label=where(asset=name, index=a, field="brushDataUrl"),
    )


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
