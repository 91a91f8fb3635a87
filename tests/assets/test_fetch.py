"""ango_torch.assets.fetch, URL expiry and prefetch against a loopback server, memory://,
local roots."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import fsspec
import numpy as np
import pytest
from httpserver import LoopbackServer, serve
from PIL import Image

from ango_torch.assets.expiry import expiry_report, url_expiry
from ango_torch.assets.fetch import AssetStore, RetryPolicy, asset_path
from ango_torch.assets.prefetch import PrefetchItem, prefetch
from ango_torch.errors import AssetFetchError, ExpiredURLError, UnsafePathError

FAST = RetryPolicy(attempts=4, backoff=0.001, max_backoff=0.01, total_timeout=5, timeout=2)
ROOT = Path(__file__).resolve().parents[2]


def png(seed: int = 0, size: tuple[int, int] = (17, 11)) -> bytes:
    """A small RGB PNG, ``size`` = (width, height)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with serve(slow_seconds=0.6) as srv:
        yield srv


@pytest.fixture
def memroot() -> Iterator[str]:
    root = f"memory://ango-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def fetch(store: AssetStore, url: str | None, external_id: str = "a.jpg", **kw: object) -> bytes:
    return store.fetch(asset_id="id-a", external_id=external_id, url=url, **kw)  # type: ignore[arg-type]


# -- retries and HTTP faults -------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [["503", "503"], ["reset"], ["slow"], ["429"], ["500", "reset", "503"]],
    ids=["two-503", "reset-mid-body", "slow-once", "429", "mixed"],
)
def test_transient_faults_are_retried(server: LoopbackServer, faults: list[str]) -> None:
    server.files["/a.jpg"] = body = png()
    server.fail("/a.jpg", *faults)
    store = AssetStore(
        retry=RetryPolicy(attempts=4, backoff=0.001, max_backoff=0.01, total_timeout=5, timeout=0.2)
    )
    assert fetch(store, server.url("/a.jpg")) == body
    assert server.counts["/a.jpg"] == len(faults) + 1


def test_slow_forever_gives_clear_error(server: LoopbackServer) -> None:
    server.always("/a.jpg", "slow")
    store = AssetStore(retry=RetryPolicy(attempts=3, backoff=0.001, timeout=0.1))
    with pytest.raises(AssetFetchError, match=r"asset 'a.jpg'.*after 3 attempt\(s\).*timed out"):
        fetch(store, server.url("/a.jpg", "X-Amz-Signature=secret"))
    assert server.counts["/a.jpg"] == 3


def test_total_budget_stops_retries(server: LoopbackServer) -> None:
    """Without the budget all 1000 attempts would run (backoff ≤ 0.05 s each); a 2 s
    budget stops them early, once the next wait would pass it.

    The budget is long enough that a loaded machine still fits a retry into it (a 0.3 s
    one did not), and both bounds are far from what an unbudgeted run would give."""
    server.always("/a.jpg", "503")
    store = AssetStore(
        retry=RetryPolicy(attempts=1000, backoff=0.05, max_backoff=0.05, total_timeout=2.0)
    )
    start = time.monotonic()
    with pytest.raises(AssetFetchError, match="HTTP 503"):
        fetch(store, server.url("/a.jpg"))
    elapsed = time.monotonic() - start
    assert 2 <= server.counts["/a.jpg"] < 1000  # retried, and stopped before the attempts
    assert elapsed < 2.0 + 5  # by the budget (plus one request's time, generously)


def test_signature_not_in_error_message(server: LoopbackServer) -> None:
    server.always("/a.jpg", "500")
    store = AssetStore(retry=RetryPolicy(attempts=2, backoff=0))
    with pytest.raises(AssetFetchError) as info:
        fetch(store, server.url("/a.jpg", "X-Amz-Signature=topsecret"))
    assert "topsecret" not in str(info.value)


def test_404_requested_once_and_names_asset(server: LoopbackServer) -> None:
    store = AssetStore(retry=FAST)
    with pytest.raises(AssetFetchError, match=r"asset 'missing.jpg' \(#7\).*404") as info:
        store.fetch(
            asset_id="x",
            external_id="missing.jpg",
            url=server.url("/missing.jpg"),
            label="asset 'missing.jpg' (#7)",
        )
    assert not isinstance(info.value, ExpiredURLError)
    assert server.counts["/missing.jpg"] == 1


def test_403_expired_raises_expired_url_error(server: LoopbackServer) -> None:
    server.always("/a.jpg", "expired")
    store = AssetStore(retry=FAST)
    with pytest.raises(
        ExpiredURLError,
        match=r"asset 'a.jpg'.*signed URL expired.*root=.*"
        r"ango-torch prefetch",
    ):
        fetch(store, server.url("/a.jpg"))
    assert server.counts["/a.jpg"] == 1


def test_403_on_past_expiry_url_is_expired_even_without_body_hint(server: LoopbackServer) -> None:
    server.always("/a.jpg", "forbidden")  # CloudFront says only "Access denied"
    store = AssetStore(retry=FAST)
    with pytest.raises(ExpiredURLError, match="2001-09-09"):
        fetch(store, server.url("/a.jpg", "Expires=1000000000&Signature=x"))


def test_403_not_expired_is_plain_fetch_error(server: LoopbackServer) -> None:
    server.always("/a.jpg", "forbidden")
    with pytest.raises(AssetFetchError, match=r"HTTP 403.*Access Denied") as info:
        fetch(AssetStore(retry=FAST), server.url("/a.jpg"))
    assert not isinstance(info.value, ExpiredURLError)
    assert server.counts["/a.jpg"] == 1


def test_connection_refused_is_retried_then_error() -> None:
    with serve() as srv:
        url = srv.url("/a.jpg")
    with pytest.raises(AssetFetchError, match="after 2 attempt"):
        fetch(AssetStore(retry=RetryPolicy(attempts=2, backoff=0, timeout=1)), url)


def test_retry_policy_validation_and_jitter() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    policy = RetryPolicy(backoff=1, max_backoff=3)
    assert all(0 <= policy.delay(k) <= min(3, 2**k) for k in range(6) for _ in range(20))
    assert policy.delay(0, retry_after=2.5) >= 2.5
    assert policy.delay(0, retry_after=100) <= 3


# -- cache -----------------------------------------------------------------------------


def test_cache_hit_makes_no_request(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["/a.jpg"] = body = png()
    store = AssetStore(cache_dir=tmp_path, retry=FAST)
    assert fetch(store, server.url("/a.jpg", "sig=1")) == body
    # A new export signs a new URL: the cache is keyed by assetId, not URL.
    assert fetch(store, server.url("/a.jpg", "sig=2")) == body
    assert fetch(AssetStore(cache_dir=tmp_path), None) == body
    assert server.counts["/a.jpg"] == 1
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


def test_cache_keys_pages_and_brush_apart(server: LoopbackServer, tmp_path: Path) -> None:
    for i, path in enumerate(["/p0", "/p1", "/brush", "/brush-label"]):
        server.files[path] = png(i)
    store = AssetStore(cache_dir=tmp_path, retry=FAST)
    calls = [
        ({"page": 0}, "/p0"),
        ({"page": 1}, "/p1"),
        ({"kind": "brush", "content_key": "k1"}, "/brush"),
        ({"kind": "brush", "stage_key": "Label", "content_key": "k2"}, "/brush-label"),
    ]
    for _ in range(2):
        for kw, path in calls:
            assert fetch(store, server.url(path), **kw) == server.files[path]
    assert all(server.counts[path] == 1 for _, path in calls)


def _fill_cache(cache_dir: str, url: str) -> bytes:
    return AssetStore(cache_dir=cache_dir).fetch(asset_id="same", external_id="a.jpg", url=url)


def test_concurrent_workers_fill_same_entry(server: LoopbackServer, tmp_path: Path) -> None:
    server.files["/a.jpg"] = body = png(size=(400, 300))
    url = server.url("/a.jpg")
    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(_fill_cache(str(tmp_path), url)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [body] * 8
    # Separate processes too (each makes its own filesystem state).
    code = (
        "import sys, os; sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]; "
        "from test_fetch import _fill_cache;"
        "sys.stdout.write(str(len(_fill_cache(sys.argv[2], sys.argv[3]))))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path), url],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    assert [int(p.communicate(timeout=60)[0]) for p in procs] == [len(body)] * 2
    assert (tmp_path / "same").read_bytes() == body
    assert [p.name for p in tmp_path.iterdir()] == ["same"]


# -- roots -------------------------------------------------------------------------------


def test_memory_root_and_fallback_to_url(server: LoopbackServer, memroot: str) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memroot}/a.jpg", b"from-root")
    fs.pipe(f"{memroot}/sub/b.jpg", b"nested")
    fs.pipe(f"{memroot}/a.jpg.pages/1", b"page-1")
    fs.pipe(f"{memroot}/_brush/id-a.k1.png", b"brush")
    fs.pipe(f"{memroot}/_brush/id-a@Label.k2.png", b"brush-label")
    server.files["/c.jpg"] = b"from-url"
    store = AssetStore(root=memroot, retry=FAST)
    assert fetch(store, server.url("/a.jpg")) == b"from-root"
    assert fetch(store, None, external_id="sub/b.jpg") == b"nested"
    assert fetch(store, None, page=1) == b"page-1"
    assert fetch(store, None, kind="brush", content_key="k1") == b"brush"
    assert fetch(store, None, kind="brush", stage_key="Label", content_key="k2") == b"brush-label"
    assert server.counts["/a.jpg"] == 0
    assert fetch(store, server.url("/c.jpg"), external_id="c.jpg") == b"from-url"
    with pytest.raises(AssetFetchError, match=r"asset 'd.jpg'.*no URL.*not found at"):
        fetch(store, None, external_id="d.jpg")


def test_local_root_and_template(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"by-external-id")
    (tmp_path / "imgs" / "id-a").write_bytes(b"by-asset-id")
    (tmp_path / "imgs" / "_brush").mkdir()
    (tmp_path / "imgs" / "_brush" / "id-a.k.png").write_bytes(b"brush")
    cache = tmp_path / "cache"
    assert fetch(AssetStore(root=tmp_path / "imgs", cache_dir=cache), None) == b"by-external-id"
    assert not cache.exists()  # a local root is not duplicated into the cache
    assert fetch(AssetStore(root=f"{tmp_path}/imgs/{{assetId}}"), None) == b"by-asset-id"
    template = AssetStore(root=f"file://{tmp_path}/imgs/{{externalId}}")
    assert fetch(template, None) == b"by-external-id"
    assert fetch(template, None, kind="brush", content_key="k") == b"brush"


ESCAPES = [
    ("../secret", UnsafePathError),
    ("a/../../secret", UnsafePathError),
    ("/etc/passwd", UnsafePathError),
    ("C:/Windows/win.ini", UnsafePathError),
    ("c:secret", UnsafePathError),
    ("..\\..\\secret", UnsafePathError),
    ("\\\\server\\share", UnsafePathError),
    ("%2e%2e/secret", UnsafePathError),
    ("~/secret", UnsafePathError),
    ("s3://other/x", UnsafePathError),
    ("", UnsafePathError),
    ("a\x00b", UnsafePathError),
    ("sub/a.jpg", None),
    ("a..b.jpg", None),
    ("..hidden.jpg", None),
]


@pytest.mark.parametrize("template", [False, True], ids=["plain", "template"])
@pytest.mark.parametrize(
    ("external_id", "expected"),
    ESCAPES,
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "drive",
        "drive-relative",
        "backslash",
        "unc",
        "percent-encoded",
        "home",
        "protocol",
        "empty",
        "nul",
        "subdir-ok",
        "dots-in-name-ok",
        "leading-dots-ok",
    ],
)
def test_root_escapes(
    tmp_path: Path, external_id: str, expected: type[Exception] | None, template: bool
) -> None:
    root = f"{tmp_path}/imgs" + ("/{externalId}" if template else "")
    if expected is None:
        path = asset_path(root, asset_id="x", external_id=external_id)
        assert path.startswith(f"{tmp_path}/imgs/") and ".." not in path.split("/")
        return
    with pytest.raises(expected, match=r"asset .*outside root"):
        fetch(AssetStore(root=root), "http://127.0.0.1:9/never", external_id=external_id)


def test_brush_ids_cannot_escape(tmp_path: Path) -> None:
    path = asset_path(
        str(tmp_path),
        asset_id="../../x",
        external_id="a",
        kind="brush",
        stage_key="../y",
        content_key="../z",
    )
    assert path == f"{tmp_path}/_brush/..%2F..%2Fx@..%2Fy...%2Fz.png"


def test_store_pickles_and_forks(memroot: str) -> None:
    fsspec.filesystem("memory").pipe(f"{memroot}/a.jpg", b"ok")
    store = AssetStore(root=memroot, storage_options={}, cache_dir=None)
    assert fetch(store, None) == b"ok"  # creates per-process state
    clone = pickle.loads(pickle.dumps(store))
    assert clone._local == {} and fetch(clone, None) == b"ok"
    store._local["pid"] = -1  # as seen from a forked child: state is rebuilt
    assert fetch(store, None) == b"ok" and store._local["pid"] == os.getpid()


# -- expiry ------------------------------------------------------------------------------

AMZ = (
    "https://b.s3.amazonaws.com/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Date=20230901T080000Z&X-Amz-Expires=120000&X-Amz-Signature=abc"
)
GOOG = (
    "https://storage.googleapis.com/b/a.jpg?X-Goog-Algorithm=GOOG4-RSA-SHA256"
    "&X-Goog-Date=20230901T080000Z&X-Goog-Expires=3600&X-Goog-Signature=abc"
)
CLOUDFRONT = "https://d111.cloudfront.net/a.jpg?Expires=1693555200&Signature=x&Key-Pair-Id=K"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (AMZ, datetime(2023, 9, 2, 17, 20, tzinfo=timezone.utc)),
        (GOOG, datetime(2023, 9, 1, 9, 0, tzinfo=timezone.utc)),
        (CLOUDFRONT, datetime(2023, 9, 1, 8, 0, tzinfo=timezone.utc)),
        ("https://example.com/a.jpg", None),
        ("https://x/a.jpg?X-Amz-Date=garbage&X-Amz-Expires=10", None),
        ("https://x/a.jpg?Expires=soon", None),
    ],
    ids=["s3-sigv4", "gcs-v4", "cloudfront-epoch", "unsigned", "bad-date", "bad-epoch"],
)
def test_url_expiry(url: str, expected: datetime | None) -> None:
    assert url_expiry(url) == expected


def test_expiry_report() -> None:
    now = datetime(2023, 9, 1, 12, 0, tzinfo=timezone.utc)
    report = expiry_report([AMZ, GOOG, CLOUDFRONT, "https://x/a.jpg", None, ""], now=now)
    assert (report.total, report.signed, report.expired, report.expiring_soon) == (4, 3, 2, 0)
    assert report.earliest == datetime(2023, 9, 1, 8, 0, tzinfo=timezone.utc)
    message = report.message()
    assert message is not None and "2 of 3" in message and "have expired" in message
    assert "root=" in message and "ango-torch prefetch" in message
    soon = expiry_report([AMZ], now=now, horizon=timedelta(days=2))
    assert soon.expiring_soon == 1 and "expire within" in (soon.message() or "")
    assert expiry_report([AMZ], now=datetime(2023, 9, 1)).message() is None
    assert expiry_report([]).message() is None


# -- prefetch ----------------------------------------------------------------------------


def test_prefetch_layout_resume_and_failures(server: LoopbackServer, tmp_path: Path) -> None:
    server.files.update(
        {
            "/a": png(1),
            "/p0": png(2),
            "/p1": png(3),
            "/b": png(4),
            "/bl": png(5),
            "/junk": b"<html>not an image</html>",
        }
    )
    server.fail("/a", "503")
    items = [
        PrefetchItem("id-a", "sub/a.jpg", server.url("/a", "sig=1")),
        PrefetchItem("id-m", "m.tif", server.url("/p0"), page=0),
        PrefetchItem("id-m", "m.tif", server.url("/p1"), page=1),
        PrefetchItem("id-a", "sub/a.jpg", server.url("/b"), kind="brush", content_key="k1"),
        PrefetchItem(
            "id-a",
            "sub/a.jpg",
            server.url("/bl"),
            kind="brush",
            stage_key="Label",
            content_key="k2",
        ),
        PrefetchItem("id-x", "x.jpg", server.url("/gone")),
        PrefetchItem("id-j", "j.jpg", server.url("/junk")),
        PrefetchItem("id-e", "../evil.jpg", server.url("/a")),
        PrefetchItem("id-n", "n.jpg", None),
        PrefetchItem("id-a", "sub/a.jpg", server.url("/a", "sig=dupe")),
    ]
    out = tmp_path / "out"
    report = prefetch(items, to=out, concurrency=3, retry=FAST, progress=False)
    assert (report.fetched, report.skipped) == (5, 0)
    failed = {item.external_id: msg for item, msg in report.failed}
    assert set(failed) == {"x.jpg", "j.jpg", "../evil.jpg", "n.jpg"}
    assert "404" in failed["x.jpg"] and "not a decodable image" in failed["j.jpg"]
    assert "outside root" in failed["../evil.jpg"] and "no URL" in failed["n.jpg"]
    assert (out / "sub/a.jpg").read_bytes() == server.files["/a"]
    assert (out / "m.tif.pages/1").read_bytes() == server.files["/p1"]
    assert (out / "_brush/id-a@Label.k2.png").read_bytes() == server.files["/bl"]
    assert not (out / "j.jpg").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    # root= reads the result with no request.
    before = sum(server.counts.values())
    store = AssetStore(root=out)
    assert store.fetch(asset_id="id-m", external_id="m.tif", url=None, page=0) == png(2)
    brush = store.fetch(
        asset_id="id-a", external_id="sub/a.jpg", url=None, kind="brush", content_key="k1"
    )
    assert brush == png(4)
    # Resume: complete files are skipped, only failures are retried.
    (out / "m.tif.pages/1").unlink()
    again = prefetch(items, to=out, retry=FAST, progress=False)
    assert (again.fetched, again.skipped, len(again.failed)) == (1, 4, 4)
    assert sum(server.counts.values()) - before == 1 + 2  # /p1, then /gone and /junk
    assert again.summary() == "1 fetched, 4 skipped, 4 failed" and not again.ok


def test_prefetch_to_memory(server: LoopbackServer, memroot: str) -> None:
    server.files["/a"] = png()
    report = prefetch(
        [PrefetchItem("i", "a.png", server.url("/a"))], to=memroot, retry=FAST, progress=False
    )
    assert report.ok and report.fetched == 1
    assert fetch(AssetStore(root=memroot), None, external_id="a.png") == png()


def test_prefetch_rejects_bad_concurrency(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        prefetch([], to=tmp_path, concurrency=0)


def test_benchmark_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fetch.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "prefetch" in result.stdout and "decode" in result.stdout
