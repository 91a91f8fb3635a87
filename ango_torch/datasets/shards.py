"""``AngoShards``: WebDataset shards (from :func:`write_shards`) as a streaming dataset.

Each sample's stored export record is read back as a one-asset export by
:class:`AngoDataset` itself (its image and brush bytes come from the shard), so a shard
sample gives exactly the ``(image, target)`` that ``AngoDataset`` gives for that asset;
``target["image_id"]`` is the sample's position in the shards.

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
import tarfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..assets.decode import decode_rgba
from ..errors import AngoTorchError, ExportFormatError, where
from .dataset import AngoDataset, Task

__all__ = ["AngoShards"]

GROUP = 32  # samples read into one AngoDataset: its set-up is paid once per group
Transforms = Callable[[Any, Any], tuple[Any, Any]]


class _Stored(AngoDataset):
    """An :class:`AngoDataset` of stored records whose bytes come from the shard."""

    def __init__(
        self,
        records: list[dict[str, Any]],
        images: list[bytes],
        brushes: list[bytes | None],
        **kw: Any,
    ) -> None:
        self._image_bytes, self._brush_bytes = images, brushes
        super().__init__(records, **kw)

    def _fetch_image(self, i: int) -> bytes:
        return self._image_bytes[int(self._samples[i, 0])]

    def _brush_rgba(self, a: int, s: int) -> npt.NDArray[np.uint8]:
        data = self._brush_bytes[a]
        label = where(asset=self.export.index.string(self.export.index.asset_external_id[a]))
        if data is None:
            raise ExportFormatError(f"{label}: the shard sample has no brush member")
        return decode_rgba(data, label=label, max_pixels=self._limits.max_canvas_pixels)


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
        if self.index.get("format_version") != 1:
            raise ExportFormatError(f"{url}: not an ango_torch shard index (format_version 1)")
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

    def _raw(self, runs: list[tuple[int, int, int]]) -> Iterator[dict[str, bytes]]:
        """The members of each sample of ``runs``, in order, as ``{ext: bytes}``."""
        for shard, first, stop in runs:
            name = self.index["shards"][shard]["name"]
            with self._open(name) as f, tarfile.open(fileobj=f, mode="r|") as tar:
                pos, key = -1, None
                sample: dict[str, bytes] = {}
                for member in tar:
                    k, _, ext = member.name.partition(".")
                    if k != key:
                        if key is not None and first <= pos < stop:
                            yield sample
                        pos, key, sample = pos + 1, k, {}
                        if pos >= stop:
                            break
                    if first <= pos < stop:
                        data = tar.extractfile(member)
                        sample[ext] = data.read() if data is not None else b""
                else:
                    if key is not None and first <= pos < stop:
                        yield sample

    def _decode(self, group: list[dict[str, bytes]]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """The ``(image, target)`` of each sample of ``group``: one AngoDataset of their
        records (the class list is fixed, so grouping does not change a target)."""
        records, images, brushes = [], [], []
        for sample in group:
            meta = json.loads(sample["json"])
            exts = [e for e in sample if e not in ("json", "brush.png")]
            if len(exts) != 1:
                label = where(asset=meta.get("externalId"))
                raise AngoTorchError(f"shard sample of {label}: expected one image member")
            records.append(meta)
            images.append(sample[exts[0]])
            brushes.append(sample.get("brush.png"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. objects a task leaves out, per group
            ds = _Stored(records, images, brushes, **self._kw)
        if len(ds) != len(group):
            raise AngoTorchError(f"shards: {len(group)} samples gave {len(ds)}")
        for i, meta in enumerate(records):
            image, target = ds[i]
            target["image_id"] = int(str(meta["asset"]).partition(".")[0])
            yield (
                self.transforms(image, target)
                if self.transforms is not None
                else (
                    image,
                    target,
                )
            )

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        rank, world, worker, workers = _slot()
        skip = 0
        if self._resume is not None and self._resume["epoch"] == self.epoch:
            skip = self._resume["yielded"]
        self._resume = None
        self._yielded = 0
        stream: Iterator[dict[str, bytes]] = self._raw(self.plan(rank, world, worker, workers))
        if self.buffer > 1:
            stream = self._shuffled(
                stream, random.Random(f"{self.seed}/{self.epoch}/{rank}/{worker}")
            )
        group: list[dict[str, bytes]] = []
        for sample in stream:
            if self._yielded + len(group) < skip:  # seen before the state was saved
                self._yielded += 1
                continue
            group.append(sample)
            if len(group) == GROUP:
                for out in self._decode(group):
                    self._yielded += 1
                    yield out
                group = []
        for out in self._decode(group) if group else ():
            self._yielded += 1
            yield out

    def _shuffled(
        self, stream: Iterator[dict[str, bytes]], rng: random.Random
    ) -> Iterator[dict[str, bytes]]:
        buf: list[dict[str, bytes]] = []
        for sample in stream:
            buf.append(sample)
            if len(buf) >= self.buffer:
                j = rng.randrange(len(buf))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf
