"""url_expiry's quick query reading agrees with urllib's on every URL.

Reference: :func:`urllib.parse.parse_qsl` of :func:`urllib.parse.urlsplit`'s query
(``_query_urllib``, the reading used before the regex and still used for URLs with
escapes); generated URLs mix the keys url_expiry reads with noise, case changes,
duplicates, bare keys, fragments and characters that make the quick path step aside.
"""

from __future__ import annotations

import random

import pytest

from ango_torch.assets import expiry

_KEYS = ["X-Amz-Date", "x-amz-expires", "X-Goog-Date", "X-GOOG-EXPIRES", "Expires", "sig", "a"]
_VALUES = ["20260101T000000Z", "3600", "1767225600", "", "abc", "%20", "a+b", "x#y", "9" * 30]


def _url(rng: random.Random) -> str:
    pairs = []
    for _ in range(rng.randrange(0, 6)):
        key = rng.choice(_KEYS)
        pairs.append(key if rng.random() < 0.1 else f"{key}={rng.choice(_VALUES)}")
    base = rng.choice(["https://b.s3.amazonaws.com/k.jpg", "https://h/a b.png", "s3://b/k#f"])
    tail = rng.choice(["", "#frag", "#?expires=1", ";x=1"])
    return f"{base}?{'&'.join(pairs)}{tail}"


@pytest.mark.parametrize("seed", range(3))
def test_query_equals_urllib(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        url = _url(rng)
        keys = {"x-amz-date", "x-amz-expires", "x-goog-date", "x-goog-expires", "expires"}
        want = {k: v for k, v in expiry._query_urllib(url).items() if k in keys}
        got = {k: v for k, v in expiry._query(url).items() if k in keys}
        assert got == want, url


def test_expiry_of_a_sigv4_url() -> None:
    # Hand-computed: signed 2026-01-01 00:00:00 UTC, valid 3600 s.
    url = "https://b.s3.amazonaws.com/k.jpg?X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600"
    when = expiry.url_expiry(url)
    assert when is not None and when.isoformat() == "2026-01-01T01:00:00+00:00"
