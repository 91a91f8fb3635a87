"""Video decoding: frame-exact reads through torchcodec, or PyAV where it cannot load.

:func:`open_video` returns a :class:`VideoReader` over a video's bytes; frame ``i`` is the
``i``-th frame in presentation order (B-frame reordering and edit lists are the decoder's
business, not guessed here).  torchcodec (``VideoDecoder(seek_mode="exact")``, batched
``get_frames_at``) is used when it imports and finds FFmpeg's shared libraries; otherwise
PyAV (whose wheel bundles FFmpeg), with one :class:`~ango_torch.errors.AngoTorchWarning`
per process.  ``ANGO_TORCH_VIDEO_DECODER=torchcodec|pyav|auto`` picks one explicitly.

Readers are cached per process (:func:`cached_reader`, a small LRU keyed by the process
id), so a forked DataLoader worker opens its own instead of inheriting its parent's.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import AngoTorchWarning, DecodeError, MissingDependencyError

__all__ = ["VideoReader", "cached_reader", "decoder_name", "open_video"]

Decoder = Literal["torchcodec", "pyav"]
_ENV = "ANGO_TORCH_VIDEO_DECODER"
_CACHE_SIZE = 4
_cache: OrderedDict[tuple[int, str], VideoReader] = OrderedDict()
_warned: set[int] = set()


class VideoReader:
    """One opened video.

    Attributes:
        decoder: ``"torchcodec"`` or ``"pyav"``.
        num_frames: frames the decoder finds (presentation order).
        fps: the stream's average frame rate (``0.0`` when unknown).
        height, width: frame size in pixels.
    """

    decoder: Decoder
    num_frames: int
    fps: float
    height: int
    width: int

    def frames(self, indices: Sequence[int]) -> npt.NDArray[np.uint8]:
        """Frames ``indices`` (any order, repeats allowed) as ``uint8 [T, 3, H, W]``."""
        raise NotImplementedError


class _TorchCodec(VideoReader):
    def __init__(self, data: bytes, label: str) -> None:
        from torchcodec.decoders import VideoDecoder  # type: ignore[attr-defined]

        self.decoder = "torchcodec"
        try:
            self._dec = VideoDecoder(data, seek_mode="exact", dimension_order="NCHW")
        except Exception as exc:  # torchcodec raises RuntimeError/ValueError
            raise DecodeError(f"{label}: not a readable video ({exc})") from exc
        meta = self._dec.metadata
        self.num_frames = int(meta.num_frames or 0)
        self.fps = float(meta.average_fps or 0.0)
        self.height, self.width = int(meta.height or 0), int(meta.width or 0)
        self._label = label

    def frames(self, indices: Sequence[int]) -> npt.NDArray[np.uint8]:
        idx = [int(i) for i in indices]
        _check(idx, self.num_frames, self._label)
        if not idx:
            return np.zeros((0, 3, self.height, self.width), np.uint8)
        batch = self._dec.get_frames_at(indices=idx)
        return np.asarray(batch.data.numpy(), np.uint8)


class _PyAV(VideoReader):
    """PyAV: packet timestamps give the presentation order; reads seek to the key frame
    before each wanted frame and decode forward (one pass for increasing indices)."""

    def __init__(self, data: bytes, label: str) -> None:
        import av

        self.decoder = "pyav"
        self._data, self._label = data, label
        try:
            with av.open(io.BytesIO(data)) as c:
                s = c.streams.video[0]
                pts = sorted(p.pts for p in c.demux(s) if p.pts is not None and p.size)
                self.fps = float(s.average_rate or 0.0)
                self.height, self.width = int(s.height), int(s.width)
        except (av.error.FFmpegError, IndexError) as exc:
            raise DecodeError(f"{label}: not a readable video ({exc})") from exc
        self._pts = pts
        self._pos = {p: i for i, p in enumerate(pts)}
        self.num_frames = len(pts)

    def frames(self, indices: Sequence[int]) -> npt.NDArray[np.uint8]:
        import av

        idx = [int(i) for i in indices]
        _check(idx, self.num_frames, self._label)
        out = np.zeros((len(idx), 3, self.height, self.width), np.uint8)
        want = sorted(set(idx))
        got: dict[int, npt.NDArray[np.uint8]] = {}
        with av.open(io.BytesIO(self._data)) as c:
            s = c.streams.video[0]
            k = 0
            while k < len(want):
                c.seek(self._pts[want[k]], stream=s, backward=True, any_frame=False)
                for frame in c.decode(s):
                    i = self._pos.get(frame.pts, -1)
                    if i > want[k]:
                        raise DecodeError(f"{self._label}: frame {want[k]} not found")
                    if i == want[k]:
                        got[i] = frame.to_ndarray(format="rgb24").transpose(2, 0, 1)
                        k += 1
                        if k == len(want) or want[k] - i > 64:  # far ahead: seek again
                            break
        for j, i in enumerate(idx):
            out[j] = got[i]
        return out


def _check(idx: list[int], n: int, label: str) -> None:
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise DecodeError(f"{label}: frame {bad[0]} is past the video's {n} frames")


def decoder_name() -> Decoder:
    """The decoder :func:`open_video` uses in this process (see the module docstring)."""
    choice = os.environ.get(_ENV, "auto").lower()
    if choice not in ("auto", "torchcodec", "pyav"):
        raise ValueError(f"{_ENV} must be auto, torchcodec or pyav, got {choice!r}")
    if choice != "auto":
        return choice  # type: ignore[return-value]
    try:
        from torchcodec.decoders import VideoDecoder  # type: ignore[attr-defined]  # noqa: F401
    except Exception as exc:  # ImportError, or RuntimeError when FFmpeg's libs are missing
        if os.getpid() not in _warned:
            _warned.add(os.getpid())
            warnings.warn(
                f"torchcodec is unavailable ({str(exc).splitlines()[0][:200]}): decoding "
                "video with PyAV",
                AngoTorchWarning,
                stacklevel=3,
            )
        return "pyav"
    return "torchcodec"


def open_video(data: bytes, *, label: str = "", decoder: Decoder | None = None) -> VideoReader:
    """A :class:`VideoReader` over ``data`` (a whole video file's bytes).

    Raises:
        MissingDependencyError: neither decoder is installed (``pip install
            'ango-torch[video]'``).
        DecodeError: the bytes are not a video either decoder reads.
    """
    name = decoder or decoder_name()
    makers: dict[str, Callable[[bytes, str], VideoReader]] = {
        "torchcodec": _TorchCodec,
        "pyav": _PyAV,
    }
    try:
        return makers[name](data, label)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{label}: decoding video needs {name} ({exc}); pip install 'ango-torch[video]'"
        ) from exc


def cached_reader(key: str, load: Callable[[], bytes], *, label: str = "") -> VideoReader:
    """The reader of video ``key`` in this process, opened from ``load()`` on a miss.

    Keyed by ``(pid, key)``: a forked worker never uses its parent's decoder.
    """
    k = (os.getpid(), key)
    reader = _cache.get(k)
    if reader is not None:
        _cache.move_to_end(k)
        return reader
    reader = open_video(load(), label=label)
    _cache[k] = reader
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return reader
