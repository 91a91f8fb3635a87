"""Reading gzip files and ZIP members safely: typed errors and an expansion-ratio check.

Decompression goes through :class:`Inflated`, which reads at most a MiB at a time,
turns the standard library's many failure types (``EOFError``, ``zlib.error``,
``BadGzipFile``, ``BadZipFile``, ``RuntimeError``, ``NotImplementedError``) into one
:class:`Fault` and stops a decompression bomb once the output outgrows the input by
``max_expansion_ratio``.  The reader (:mod:`._read`) turns a fault into an
:class:`~ango_torch.errors.ArchiveError` naming the asset being read.
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from typing import IO, Any

from ..errors import ArchiveError, DecompressionBombError, ExportFormatError
from ..limits import Limits, hint

__all__ = ["CHUNK", "INFLATE_STEP", "Fault", "open_gzip", "open_zip_member"]

CHUNK = 8 << 20
INFLATE_STEP = 1 << 20
"""Decompressed bytes per read, so the expansion ratio is checked every MiB."""


class Fault(Exception):
    """A decompression failure, turned into ``cls`` by :func:`ango_torch.export._read._located`."""

    def __init__(self, cls: type[ExportFormatError], text: str) -> None:
        super().__init__(text)
        self.cls, self.text = cls, text


class Counted(io.RawIOBase):
    """Pass-through reader that counts the (compressed) bytes read through it."""

    def __init__(self, f: Any) -> None:
        self.f, self.count = f, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        data: bytes = self.f.read(-1 if n is None else n)
        self.count += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return bool(self.f.seekable())

    def seek(self, pos: int, whence: int = 0) -> int:
        return int(self.f.seek(pos, whence))

    def tell(self) -> int:
        return int(self.f.tell())


class Inflated(io.RawIOBase):
    """A decompressing stream with typed errors and an expansion-ratio check.

    Reads at most :data:`INFLATE_STEP` bytes at a time, so a bomb is caught after a
    MiB or so of output past ``expansion_grace_bytes``, never after the whole member.
    """

    def __init__(self, inner: Any, counted: Counted, kind: str, lim: Limits) -> None:
        self.inner, self.counted, self.kind, self.lim = inner, counted, kind, lim
        self.out = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.inner.close()
        super().close()

    def readinto(self, b: Any) -> int:
        kind = self.kind
        try:
            n = int(self.inner.readinto(memoryview(b)[:INFLATE_STEP]))
        except EOFError as exc:
            raise Fault(ArchiveError, f"truncated {kind} ({exc})") from exc
        except (zlib.error, gzip.BadGzipFile, zipfile.BadZipFile) as exc:
            raise Fault(ArchiveError, f"corrupt {kind} ({exc})") from exc
        except (RuntimeError, NotImplementedError) as exc:  # zipfile: password, method
            raise Fault(ArchiveError, f"unreadable {kind} member ({exc})") from exc
        self.out += n
        lim, compressed = self.lim, max(self.counted.count, 1)
        if self.out > lim.expansion_grace_bytes and self.out > lim.max_expansion_ratio * compressed:
            raise Fault(
                DecompressionBombError,
                f"{kind} data expands more than max_expansion_ratio="
                f"{lim.max_expansion_ratio:g} times ({self.out} bytes from {compressed}; "
                f"a decompression bomb?); {hint('max_expansion_ratio')}",
            )
        return n


ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def open_zip_member(stream: Any, name: str, lim: Limits) -> tuple[IO[bytes], str]:
    """Open the one export file of a ZIP; returns (decompressing stream, its name).

    Raises:
        ArchiveError: a corrupt ZIP, an encrypted member or an unsupported method.
        DecompressionBombError: the member declares more than ``max_expansion_ratio``.
        ExportFormatError: no export file in the ZIP, or more than one.
    """
    # ZipFile reads the central directory at the end: seek in the file when it can,
    # read it into memory only when the stream cannot seek.
    seekable = hasattr(stream, "seekable") and stream.seekable()
    counted = Counted(stream if seekable else io.BytesIO(stream.read()))
    try:
        zf = zipfile.ZipFile(counted)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ArchiveError(f"export {name!r}: corrupt ZIP ({exc})") from exc
    members = [
        i
        for i in zf.infolist()
        if not i.is_dir()
        and not i.filename.startswith(("__MACOSX/", "."))
        and i.filename.lower().endswith((".json", ".ndjson", ".jsonl", ".json.gz"))
    ]
    if not members:
        listed = ", ".join(i.filename for i in zf.infolist()) or "nothing"
        raise ExportFormatError(
            f"export {name!r}: the ZIP holds no .json or .ndjson file (it holds {listed})"
        )
    if len(members) > 1:
        listed = ", ".join(m.filename for m in members)
        raise ExportFormatError(
            f"export {name!r}: the ZIP holds {len(members)} export files ({listed}), expected one"
        )
    m = members[0]
    inner = f"{name}!{m.filename}"
    if m.flag_bits & 0x1:
        raise ArchiveError(f"export {inner!r}: the ZIP member is encrypted; decrypt it first")
    if m.compress_type not in ZIP_METHODS:
        raise ArchiveError(
            f"export {inner!r}: ZIP compression method {m.compress_type} is not supported "
            "(stored, deflate, bzip2 and LZMA are); re-zip it with deflate"
        )
    if m.file_size > lim.expansion_grace_bytes and m.file_size > lim.max_expansion_ratio * max(
        m.compress_size, 1
    ):
        raise DecompressionBombError(
            f"export {inner!r}: the ZIP member declares {m.file_size} bytes from "
            f"{m.compress_size}, more than max_expansion_ratio={lim.max_expansion_ratio:g} "
            f"times (a decompression bomb?); {hint('max_expansion_ratio')}"
        )
    try:
        opened = zf.open(m)
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile, EOFError) as exc:
        raise ArchiveError(f"export {inner!r}: unreadable ZIP member ({exc})") from exc
    return io.BufferedReader(Inflated(opened, counted, "ZIP", lim), CHUNK), inner


def open_gzip(stream: Any, lim: Limits) -> IO[bytes]:
    """A decompressing stream over a gzip file (every member, as ``gzip`` reads them)."""
    counted = Counted(stream)
    return io.BufferedReader(Inflated(gzip.GzipFile(fileobj=counted), counted, "gzip", lim), CHUNK)
