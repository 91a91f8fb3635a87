"""When signed asset URLs stop working: :func:`url_expiry` and :func:`expiry_report`.

Pure string and time arithmetic, no IO.  Ango exports carry pre-signed S3/GCS URLs
that are valid for a limited time (about 33 hours); these functions read the expiry
out of the query string so that a loader can warn before downloads start failing.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

__all__ = ["ExpiryReport", "expiry_report", "url_expiry"]


# The query keys url_expiry reads, found by a regex where the query is plain (no
# percent-escapes, '+', blanks, non-ASCII, IPv6 brackets): parse_qsl + urlsplit cost
# ~25 us a URL, a third of building an AngoDataset over a 10k-asset export (issue 14).
_KEYS = re.compile(
    r"(?:^|&)(x-(?:amz|goog)-(?:date|expires)|expires)(?:=([^&]*))?(?=&|$)", re.IGNORECASE
)
_PLAIN = re.compile(r"[!-~]*")  # printable ASCII, no blank


def _query(url: str) -> dict[str, str]:
    query = url.partition("#")[0].partition("?")[2]
    if _PLAIN.fullmatch(url) and not any(c in url for c in "%+[]\\;"):
        return {k.lower(): v for k, v in _KEYS.findall(query)}
    return _query_urllib(url)


def _query_urllib(url: str) -> dict[str, str]:
    """The query's keys (lowercased) and values as :mod:`urllib.parse` reads them."""
    try:
        pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    except ValueError:  # a malformed URL (``https://[::1/x``) carries no expiry we can read
        return {}
    return {k.lower(): v for k, v in pairs}


@lru_cache(maxsize=1024)
def _signed_until(date: str, seconds: str) -> datetime | None:
    """``X-Amz-Date`` + ``X-Amz-Expires`` (or X-Goog-): one export shares a few."""
    try:
        signed = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        return signed + timedelta(seconds=int(seconds))
    except (ValueError, OverflowError):
        return None


def url_expiry(url: str) -> datetime | None:
    """When a signed URL stops working, or ``None`` when it carries no expiry.

    Understands AWS SigV4 (``X-Amz-Date`` + ``X-Amz-Expires``), GCS V4
    (``X-Goog-Date`` + ``X-Goog-Expires``) and epoch ``Expires=`` (CloudFront,
    legacy S3 SigV2, GCS V2).

    Returns:
        A timezone-aware UTC datetime, or ``None``.
    """
    q = _query(url)
    for prefix in ("x-amz-", "x-goog-"):
        date, seconds = q.get(prefix + "date"), q.get(prefix + "expires")
        if date is not None and seconds is not None:
            return _signed_until(date, seconds)
    epoch = q.get("expires")
    if epoch is not None:
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            return None
    return None


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    """How many of an export's URLs are signed, expired, or expire soon.

    Attributes:
        total: URLs looked at (empty ones are not counted).
        signed: Those carrying an expiry.
        expired: Signed URLs already past their expiry.
        expiring_soon: Signed URLs not yet expired but expiring within ``horizon``.
        earliest: The earliest expiry among signed URLs (UTC), or ``None``.
        horizon: The look-ahead used for ``expiring_soon``.
    """

    total: int
    signed: int
    expired: int
    expiring_soon: int
    earliest: datetime | None
    horizon: timedelta = timedelta(hours=24)

    def message(self) -> str | None:
        """A warning for the user, or ``None`` when no URL is expired or expiring."""
        if not self.expired and not self.expiring_soon:
            return None
        when = self.earliest.strftime("%Y-%m-%d %H:%M UTC") if self.earliest else "?"
        if self.expired:
            head = f"{self.expired} of {self.signed} signed asset URLs have expired"
            if self.expiring_soon:
                head += f" and {self.expiring_soon} more expire within {self.horizon}"
        else:
            head = (
                f"{self.expiring_soon} of {self.signed} signed asset URLs expire within "
                f"{self.horizon}"
            )
        return (
            f"{head} (earliest {when}). Downloads of expired URLs fail with HTTP 403. "
            "Copy the images once with `ango-torch prefetch` (or "
            "ango_torch.assets.prefetch.prefetch) and pass root= to read them from there, "
            "or download a fresh export."
        )


def expiry_report(
    urls: Iterable[str | None],
    *,
    now: datetime | None = None,
    horizon: timedelta = timedelta(hours=24),
) -> ExpiryReport:
    """Summarise the expiry of many URLs (see :func:`url_expiry`).

    Args:
        urls: Asset (and brush) URLs; ``None`` and ``""`` are skipped.
        now: The reference time (aware, or naive UTC); default: the current time.
        horizon: URLs expiring sooner than ``now + horizon`` count as expiring soon.
    """
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    total = signed = expired = soon = 0
    earliest: datetime | None = None
    for url in urls:
        if not url:
            continue
        total += 1
        expiry = url_expiry(url)
        if expiry is None:
            continue
        signed += 1
        earliest = expiry if earliest is None else min(earliest, expiry)
        if expiry <= now:
            expired += 1
        elif expiry <= now + horizon:
            soon += 1
    return ExpiryReport(total, signed, expired, soon, earliest, horizon)
