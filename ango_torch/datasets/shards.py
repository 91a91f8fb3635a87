"""``AngoShards``: WebDataset shards (from :func:`write_shards`) as a streaming dataset.

Each shard's stored records, parsed and checked once by the writer
(``index/<shard>.npz``, an :class:`~ango_torch.export.index.ExportIndex`), are read by
:class:`AngoDataset` itself (its image and brush bytes come from the shard), so a shard
sample gives exactly the ``(image, target)`` that ``AngoDataset`` gives for that asset;
``target["image_id"]`` is the sample's key, its ``AngoDataset`` sample index.

Distribution, per epoch: the shards are put in the order of a permutation drawn from
``(seed, epoch)`` (the same on every rank; the written order when ``shuffle=False``);
their samples, concatenated in that order, are the epoch's sample list of ``N``.  Rank
``r`` of ``W`` takes the contiguous run ``[r*n, (r+1)*n)`` with ``n = N // W``: every
rank yields the same number of samples and the last ``N % W`` of the epoch's list are
left out (different ones each epoch when shuffling).  Within a rank, DataLoader worker
``w`` of ``K`` takes the ``w``-th contiguous part of the rank's run (sizes differ by at
most one).  So each (rank, worker) slot reads its own shards, sharing at most the
shard at each end of its run with a neighbour (of which it reads only its samples).
``buffer > 1`` shuffles within a slot through a buffer of that many samples, seeded by
``(seed, epoch, rank, worker)``.

Resume: ``state_dict()`` is ``{"epoch", "yielded"}`` of the process it is called in:
with ``num_workers=0`` the main process; with workers, use torchdata's
``StatefulDataLoader``, which calls it in each worker and hands each worker its own
state back.  After ``load_state_dict`` the next iteration of that epoch skips the
samples already yielded (read, not decoded) and yields exactly the rest.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..assets.decode import decode_rgba
from ..errors import AngoTorchError, ExportFormatError, where
from ..export.load import AngoExport
from ._shard_format import FORMAT_VERSION, index_name, read_index
from .dataset import AngoDataset, Task

__all__ = ["AngoShards"]

CACHED = 8  # per-shard datasets kept (a shuffle buffer may interleave a few shards)
Transforms = Callable[[Any, Any], tuple[Any, Any]]


class _Stored(AngoDataset):
    """An :class:`AngoDataset` of one shard's stored index; the bytes of the sample being
    decoded are set on it (``image``, ``brush``) just before it is read."""

    image: bytes = b""
    brush: bytes | None = None

    def _fetch_image(self, i: int) -> bytes:
        return self.image

    def _brush_rgba(self, a: int, s: int) -> npt.NDArray[np.uint8]:
        label = where(asset=self.export.index.string(self.export.index.asset_external_id[a]))
        if self.brush is None:
            raise ExportFormatError(f"{label}: the shard sample has no brush member")
        return decode_rgba(self.brush, label=label, max_pixels=self._limits.max_canvas_pixels)


def _members(f: Any, label: str) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of each member of the ustar stream ``f`` (as written by
    :func:`write_shards`: regular files, no pax headers), in order, read sequentially.

    Reads each 512-byte header directly: ``tarfile``'s per-member objects cost about a
    fifth of a shard epoch at small images.

    Raises:
        ExportFormatError: a member that is not a regular file, or a truncated stream.
    """
    while True:
        head = f.read(512)
        if len(head) < 512 or head == bytes(512):
            return
        name = head[:100].split(b"\0", 1)[0]
        if head[345:500].strip(b"\0"):
            name = head[345:500].split(b"\0", 1)[0] + b"/" + name
        try:
            size = int(head[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            size = -1
        if head[156:157] not in (b"0", b"\0") or size < 0:
            raise ExportFormatError(f"{label}: not a shard written by write_shards ({name!r})")
        data = f.read(-(-size // 512) * 512)[:size]
        if len(data) < size:
            raise ExportFormatError(f"{label}: truncated at member {name!r}")
        yield name.decode(), data


def _slot() -> tuple[int, int, int, int]:
    """``(rank, world, worker, workers)`` of the calling process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    info = torch.utils.data.get_worker_info()
    return (rank, world, 0, 1) if info is None else (rank, world, info.id, info.num_workers)


class AngoShards(torch.utils.data.IterableDataset[tuple[Any, dict[str, Any]]]):
    """Shards written by :func:`~ango_torch.write_shards` as ``(image, target)`` samples.

    Args:
        index: path or fsspec URL of the shards' ``index.json`` (the shards are next
            to it).
        task: ``"detection"``, ``"instance"`` or ``"semantic"``, as for AngoDataset.
        classes: class titles to keep, in label order (default: all, in the order the
            whole export gives :class:`AngoDataset`).
        transforms: a joint ``(image, target) -> (image, target)`` callable.
        shuffle: shuffle the shard order each epoch (from ``seed`` and the epoch).
        seed: the shuffling seed; must be the same on every rank.
        buffer: shuffle within each (rank, worker) slot through a buffer of this many
            samples (``0``: no within-slot shuffle).
        storage_options: passed to fsspec.
        cache_dir: keep a local copy of remote shards here (fsspec ``filecache``).
        **options: further :class:`AngoDataset` options (``overlap``, ``attributes``,
            ``brush_instances``, ``brush_unlisted``); ``stage`` is the shards' own
            (``write_shards(stage=...)``).
    """

    def __init__(
        self,
        index: str | os.PathLike[str],
        *,
        task: Task = "instance",
        classes: Sequence[str] | None = None,
        transforms: Transforms | None = None,
        shuffle: bool = True,
        seed: int = 0,
        buffer: int = 0,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        import fsspec

        super().__init__()
        url = os.fspath(index)
        with fsspec.open(url, "rb", **(storage_options or {})) as f:
            self.index: dict[str, Any] = json.loads(f.read())
        if self.index.get("format_version") != FORMAT_VERSION:
            raise ExportFormatError(
                f"{url}: not an ango_torch shard index (format_version {FORMAT_VERSION}); "
                "write the shards again with this version"
            )
        if task not in self.index["tasks"]:
            raise ValueError(f"task must be one of {sorted(self.index['tasks'])}, got {task!r}")
        self.base = url.rsplit("/", 1)[0] if "/" in url else "."
        self.task: Task = task
        info = self.index["tasks"][task]
        self.classes = (
            ["__background__", *classes] if classes is not None else list(info["classes"])
        )
        brush = dict(self.index["tasks"]["semantic"]["brush_colors"])
        stage = self.index.get("stage")
        if options.get("stage", stage) != stage:  # the brush members are that stage's
            raise ValueError(
                f"{url}: the shards hold stage {stage!r}, not {options['stage']!r}; "
                "write shards of that stage (write_shards(stage=...))"
            )
        options["stage"] = stage
        self._kw: dict[str, Any] = {
            "task": task,
            "classes": self.classes[1:],
            "brush_colors": brush,
            **options,
        }
        self.transforms = transforms
        self.shuffle, self.seed, self.buffer = shuffle, int(seed), int(buffer)
        self.storage_options, self.cache_dir = storage_options, cache_dir
        self.epoch = 0
        self._yielded = 0
        self._resume: dict[str, int] | None = None
        self._datasets: OrderedDict[int, _Stored] = OrderedDict()

    # -- epochs and state -----------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (call before each epoch, on every rank)."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "yielded"}``: the samples this process yielded in the epoch."""
        return {"epoch": self.epoch, "yielded": self._yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next iteration continues epoch ``state["epoch"]`` after the
        ``state["yielded"]`` samples already seen."""
        self.epoch = int(state["epoch"])
        self._resume = {"epoch": self.epoch, "yielded": int(state["yielded"])}

    # -- the epoch's plan -----------------------------------------------------------------
    def shard_order(self, epoch: int | None = None) -> list[int]:
        """The shards' order in ``epoch`` (default: the current one)."""
        n = len(self.index["shards"])
        if not self.shuffle:
            return list(range(n))
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        return [int(v) for v in rng.permutation(n)]

    def plan(
        self, rank: int, world: int, worker: int = 0, workers: int = 1
    ) -> list[tuple[int, int, int]]:
        """The slot's ``(shard, first, stop)`` sample runs (positions within each shard)."""
        counts = [int(s["samples"]) for s in self.index["shards"]]
        total = sum(counts)
        per_rank = total // world
        start = rank * per_rank
        k, extra = divmod(per_rank, workers)
        start += worker * k + min(worker, extra)
        stop = start + k + (worker < extra)
        runs, pos = [], 0
        for shard in self.shard_order():
            lo, hi = max(start, pos), min(stop, pos + counts[shard])
            if lo < hi:
                runs.append((shard, lo - pos, hi - pos))
            pos += counts[shard]
        return runs

    def samples_per_rank(self, world: int) -> int:
        """How many samples every rank yields per epoch (``N // world``)."""
        return int(self.index["samples"]) // world

    def __len__(self) -> int:
        """Samples this rank yields per epoch (``samples_per_rank`` of the world size)."""
        return self.samples_per_rank(_slot()[1])

    # -- reading --------------------------------------------------------------------------
    def _open(self, name: str) -> Any:
        import fsspec

        url = f"{self.base}/{name}"
        if self.cache_dir is not None and "://" in url:
            cache = {"cache_storage": os.fspath(self.cache_dir)}
            return fsspec.open(
                f"filecache::{url}",
                "rb",
                filecache=cache,
                **{url.split("://")[0]: self.storage_options or {}},
            ).open()
        return fsspec.open(url, "rb", **(self.storage_options or {})).open()

    def _raw(
        self, runs: list[tuple[int, int, int]]
    ) -> Iterator[tuple[int, int, str, dict[str, bytes]]]:
        """``(shard, position, key, {ext: bytes})`` of each sample of ``runs``, in order."""
        for shard, first, stop in runs:
            name = self.index["shards"][shard]["name"]
            with self._open(name) as f:
                pos, key = -1, ""
                sample: dict[str, bytes] = {}
                for member, data in _members(f, f"{self.base}/{name}"):
                    k, _, ext = member.partition(".")
                    if k != key:
                        if key and first <= pos < stop:
                            yield shard, pos, key, sample
                        pos, key, sample = pos + 1, k, {}
                        if pos >= stop:
                            break
                    if first <= pos < stop:
                        sample[ext] = data
                else:
                    if key and first <= pos < stop:
                        yield shard, pos, key, sample

    def _dataset(self, shard: int) -> _Stored:
        """The :class:`AngoDataset` of ``shard``'s stored index (a few kept, LRU)."""
        ds = self._datasets.get(shard)
        if ds is not None:
            self._datasets.move_to_end(shard)
            return ds
        entry = self.index["shards"][shard]
        name = index_name(entry["name"])
        with self._open(name) as f:
            stored = read_index(f.read(), f"{self.base}/{name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. objects a task leaves out, per shard
            ds = _Stored(AngoExport(stored, source=f"{self.base}/{name}"), **self._kw)
        if len(ds) != int(entry["samples"]):
            raise AngoTorchError(
                f"{self.base}/{name}: {len(ds)} samples, the shard has {entry['samples']}"
            )
        self._datasets[shard] = ds
        if len(self._datasets) > CACHED:
            self._datasets.popitem(last=False)
        return ds

    def _decode(self, shard: int, pos: int, sample: dict[str, bytes]) -> tuple[Any, Any]:
        """The ``(image, target)`` of the sample at ``pos`` in ``shard``."""
        ds = self._dataset(shard)
        exts = [e for e in sample if e not in ("json", "brush.png")]
        if len(exts) != 1:
            label = where(asset=ds.asset_id(pos))
            raise AngoTorchError(f"shard sample of {label}: expected one image member")
        ds.image, ds.brush = sample[exts[0]], sample.get("brush.png")
        try:
            image, target = ds[pos]
        finally:
            ds.image, ds.brush = b"", None
        return image, target

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        rank, world, worker, workers = _slot()
        skip = 0
        if self._resume is not None and self._resume["epoch"] == self.epoch:
            skip = self._resume["yielded"]
        self._resume = None
        self._yielded = 0
        stream: Iterator[tuple[int, int, str, dict[str, bytes]]] = self._raw(
            self.plan(rank, world, worker, workers)
        )
        if self.buffer > 1:
            stream = self._shuffled(
                stream, random.Random(f"{self.seed}/{self.epoch}/{rank}/{worker}")
            )
        for shard, pos, key, sample in stream:
            if self._yielded < skip:  # seen before the state was saved: read, not decoded
                self._yielded += 1
                continue
            image, target = self._decode(shard, pos, sample)
            target["image_id"] = int(key)  # the sample's AngoDataset index
            self._yielded += 1
            yield (
                self.transforms(image, target)
                if self.transforms is not None
                else (
                    image,
                    target,
                )
            )

    def _shuffled(
        self, stream: Iterator[tuple[int, int, str, dict[str, bytes]]], rng: random.Random
    ) -> Iterator[tuple[int, int, str, dict[str, bytes]]]:
        buf: list[tuple[int, int, str, dict[str, bytes]]] = []
        for sample in stream:
            buf.append(sample)
            if len(buf) >= self.buffer:
                j = rng.randrange(len(buf))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf
