"""What an export's URLs may name, and reading and writing this machine's files safely.

An export is untrusted (README "Security and limits"): its ``asset``, ``dataset[]`` and
``brushDataUrl`` values are remote URLs, and :func:`is_local_url` tells the ones that
would read this machine's disk.  :func:`read_local` reads regular files only, at most a
limit of bytes (never a device such as ``/dev/zero``, a FIFO or a folder);
:func:`check_inside` refuses a path whose real location (symlinks resolved) leaves its
folder; :func:`atomic_write` writes without ever showing a partial file.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import urllib.parse
from typing import Final

from ..errors import AssetFetchError, AssetTooLargeError, UnsafePathError
from ..limits import ENV

__all__ = [
    "Missing",
    "atomic_write",
    "check_inside",
    "is_local_path",
    "is_local_url",
    "read_local",
    "redact",
    "requote",
    "too_large",
]

_PROTOCOL: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# fsspec protocols that read this machine's disk: itself, or another file system's files
# (the local one unless told otherwise: caches, archives, prefixes, references, git).
_LOCAL_PROTOCOLS: Final = frozenset(
    {"file", "local", "simplecache", "filecache", "blockcache", "cached", "dir", "reference"}
    | {"zip", "tar", "libarchive", "git", "jlab", "jupyter"}
)
# Characters left as they are when a URL is re-quoted for urllib (RFC 3986 reserved + %).
_URL_SAFE: Final = "!#$%&'()*+,/:;=?@[]~"


class Missing(Exception):
    """The file is not there (404 / FileNotFoundError): try the next source."""


def redact(url: str) -> str:
    """``url`` without its query string: signatures must not end up in logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # malformed (``https://[::1/x``): cut at the query by hand
        head, sep, _ = url.partition("?")
        return head + ("?…" if sep else "")
    if parts.query:
        return urllib.parse.urlunsplit(parts._replace(query="…"))
    return url


def requote(url: str) -> str:
    """``url`` with non-ASCII characters, spaces and controls percent-encoded (UTF-8), as
    browsers send them; ``%XX`` escapes and reserved characters are kept.

    Raises:
        UnicodeEncodeError: A lone surrogate (a ``ValueError``).
    """
    return urllib.parse.quote(url, safe=_URL_SAFE, errors="surrogateescape")


def is_local_path(path: str) -> bool:
    """Whether ``path`` (a ``root``, destination or URL) is a local path or ``file://``."""
    return "://" not in path or path.startswith("file://")


def is_local_url(url: str) -> bool:
    """Whether a URL from an export would read this machine's disk.

    True for paths (absolute, or relative to the working directory), ``file://`` and
    fsspec URLs whose file system reads local files by default or by chaining
    (``zip://x::/a.zip``, ``simplecache::…``, ``dir://``, ``reference://``...).  HTTP(S)
    URLs and plain remote fsspec URLs (``s3://``, ``gs://``, ``memory://``...) are not.
    """
    found = _PROTOCOL.match(url)
    if found is None:
        return True  # no protocol: a path on this machine
    protocol = found.group(1).lower()
    if protocol in ("http", "https"):
        return False  # read with urllib: "::" is IPv6 there, never an fsspec chain
    return "::" in url or protocol in _LOCAL_PROTOCOLS


def too_large(label: str, url: str, size: str, limit: int) -> AssetTooLargeError:
    """The error for a file of ``size`` (text) bytes over ``max_asset_file_bytes``."""
    return AssetTooLargeError(
        f"{label}: {redact(url)!r} is {size} bytes, over max_asset_file_bytes={limit:,}; if "
        "the file is genuine, raise it around creating the dataset (or calling prefetch) "
        "with ango_torch.limits.override(max_asset_file_bytes=...), or with "
        f"{ENV}='max_asset_file_bytes=...'"
    )


def read_local(path: str, label: str, limit: int) -> bytes:
    """A local file's bytes: regular files only, at most ``limit`` bytes.

    Raises:
        Missing: No file at ``path`` (or a path component is a file).
        AssetFetchError: A folder, device, FIFO or socket (opened without waiting),
            or a file that cannot be read (permissions, name too long, symlink loop).
        AssetTooLargeError: More than ``limit`` bytes.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO must not wait for a writer
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise Missing(str(exc)) from exc
    except (OSError, ValueError) as exc:  # permission, name too long, loop, NUL...
        raise AssetFetchError(f"{label}: cannot read {path!r}: {exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise AssetFetchError(
            f"{label}: {path!r} is not a regular file (a folder, device, pipe or socket); "
            "refusing to read it"
        )
    with os.fdopen(fd, "rb") as f:
        if info.st_size > limit:
            raise too_large(label, path, f"{info.st_size:,}", limit)
        try:
            # Ask for the file's size (+1 to see it grow), not for ``limit``: read(n)
            # allocates n bytes up front (1 GiB per image where overcommit is off).
            data = f.read(info.st_size + 1)
            if len(data) > info.st_size:  # growing while read: at most limit + 1 in all
                data += f.read(max(limit + 1 - len(data), 0))
        except OSError as exc:
            raise AssetFetchError(f"{label}: cannot read {path!r}: {exc}") from exc
    if len(data) > limit:
        raise too_large(label, path, f"over {limit:,}", limit)
    return data


def check_inside(path: str, folder: str, label: str, *, what: str, remedy: str) -> None:
    """Refuse a local ``path`` whose real location (every symlink resolved) is not inside
    ``folder``'s real location.

    Raises:
        UnsafePathError: It is not; the message names ``what`` (``"root"``) and ``remedy``.
    """
    top = os.path.realpath(folder.removeprefix("file://"))
    real = os.path.realpath(path.removeprefix("file://"))
    if real != top and not real.startswith(top.rstrip(os.sep) + os.sep):
        raise UnsafePathError(
            f"{label}: {path!r} resolves to {real!r}, outside {what} {top!r} (a symlink "
            f"leading out); {remedy}"
        )


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to local ``path`` via a temp file in the same folder + rename.

    Readers (other DataLoader workers, a resumed prefetch) see the old state or the
    whole file, never a part of it.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix="." + os.path.basename(path)[:60] + ".", suffix=".part"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
