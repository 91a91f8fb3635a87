"""HTTP(S) downloads of :class:`~ango_torch.assets.fetch.AssetStore`, with the standard
library: a plain request exposes the status *and body* of a failure, which is how an
expired signature (S3's ``Request has expired``, GCS's ``ExpiredToken``) is told from a
real 403, and which failures are worth a retry.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from http.client import HTTPException, InvalidURL
from typing import Final

from ..errors import AngoTorchError, AssetFetchError, ExpiredURLError
from ._local import Missing, redact, requote, too_large
from .expiry import url_expiry

__all__ = ["Retryable", "http_error", "http_get", "malformed", "retry_after"]

_USER_AGENT: Final = "ango_torch"
_RETRY_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
_EXPIRED_BODY: Final = re.compile(rb"expired|expiredtoken", re.IGNORECASE)
_HINT: Final = (
    "signed URLs in an Ango export are only valid for a limited time (about 33 hours); "
    "download a fresh export and pass root= pointing at a copy of the images, e.g. one "
    "made with `ango-torch prefetch`"
)


class Retryable(Exception):
    """A transient failure: try again (carries a description and Retry-After)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare for 429/503, fall back to backoff


def http_get(url: str, label: str, timeout: float, limit: int) -> bytes:
    """GET ``url`` (at most ``limit`` bytes) with the standard library.

    Raises:
        Missing: HTTP 404.
        Retryable: A transient failure (connection, 408/425/429/5xx, a short body).
        ExpiredURLError: A 400/401/403 for an expired signature.
        AssetFetchError: Any other failure, or a malformed URL.
    """
    try:
        # Non-ASCII and spaces percent-encoded as browsers do (UTF-8); % kept.
        quoted = requote(url)
        request = urllib.request.Request(quoted, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and int(expected) > limit:
                raise too_large(label, url, f"{int(expected):,} (Content-Length)", limit)
            data: bytes = response.read(limit + 1)
            if len(data) > limit:
                raise too_large(label, url, f"over {limit:,}", limit)
            if expected is not None and expected.isdigit() and len(data) != int(expected):
                raise Retryable(f"short body: {len(data)} of {expected} bytes")
            return data
    except AngoTorchError:
        raise
    except urllib.error.HTTPError as exc:
        http_error(exc, url, label)
        raise AssertionError("unreachable") from exc  # http_error always raises
    except urllib.error.URLError as exc:
        # Connection refused / reset / DNS / timeout before the response.
        if isinstance(exc.reason, (ValueError, InvalidURL)):
            raise malformed(url, label, exc.reason) from exc
        raise Retryable(f"{type(exc.reason).__name__}: {exc.reason}") from exc
    except InvalidURL as exc:
        raise malformed(url, label, exc) from exc
    except (OSError, HTTPException) as exc:
        # Reset or timeout while reading the body; IncompleteRead; bad status line.
        raise Retryable(f"{type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # bad IPv6 brackets, port, IDNA label...
        raise malformed(url, label, exc) from exc


def malformed(url: str, label: str, exc: BaseException) -> AssetFetchError:
    """The error for a URL that cannot be requested at all."""
    return AssetFetchError(f"{label}: malformed URL {redact(url)!r} ({type(exc).__name__}: {exc})")


def http_error(exc: urllib.error.HTTPError, url: str, label: str) -> None:
    """Raise what an HTTP error status means (never returns)."""
    status = exc.code
    try:
        body = exc.read(4096)
    except (OSError, HTTPException):
        body = b""
    finally:
        exc.close()
    if status == 404:
        raise Missing(f"HTTP 404 from {redact(url)}")
    if status in _RETRY_STATUS:
        raise Retryable(f"HTTP {status} {exc.reason}", retry_after(exc.headers.get("Retry-After")))
    if status in (400, 401, 403):
        expiry = url_expiry(url)
        past = expiry is not None and expiry.timestamp() < time.time()
        if _EXPIRED_BODY.search(body) or past:
            when = f" at {expiry.isoformat()}" if expiry is not None else ""
            raise ExpiredURLError(
                f"{label}: the signed URL expired{when} (HTTP {status} from "
                f"{redact(url)}: {snippet(body)}); {_HINT}"
            )
    raise AssetFetchError(
        f"{label}: HTTP {status} {exc.reason} from {redact(url)}: {snippet(body)}"
    )


def snippet(body: bytes) -> str:
    """The start of an error body (S3/GCS ``<Message>`` where there is one), quoted."""
    text = body.decode("utf-8", "replace")
    message = re.search(r"<Message>(.*?)</Message>", text, re.DOTALL)
    text = message.group(1) if message else text
    text = " ".join(text.split())
    return repr(text[:200] + ("…" if len(text) > 200 else ""))
