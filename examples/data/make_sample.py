#!/usr/bin/env python3
"""(Re)generate the bundled sample Ango export from the three photographs.

    python examples/data/make_sample.py            # writes sample_export.json,
                                                   # ontology.json, images/_brush/*.png
    python examples/data/make_sample.py --preview DIR   # also draws overlays into DIR

Needs only numpy and Pillow, and is deterministic: the same images give byte-identical
outputs (ids are hashes of fixed names, timestamps are fixed).

Provenance of every annotation
------------------------------
coins.png (384x303, grayscale)
    coin polygons: image analysis. (1) background = 31 px minimum filter + Gaussian
    blur; foreground = more than 40 grey levels above it, a 3 px frame cleared, opened
    with a disc of radius 7 (separates the bright right-hand border strip from the
    bottom-right coin and drops specks); the connected components of at least 800 px
    and mean grey >= 110 are the 24 coins (asserted). (2) Each component only seeds
    its coin: from its centroid, 72 rays are cast and the rim is placed where the
    (sigma 1) smoothed image crosses the level 40 % of the way from the surrounding
    background's 25th percentile to the coin's own median grey (sub-pixel, by linear
    interpolation) before a sustained (>= 1.5 px) drop, searching 0.5R..1.3R; radii are capped at 1.12x their median
    (a ray must not run into a touching neighbour) and median-filtered over 5 rays.
    (3) Coins are convex, so the 72-gon's convex hull is taken (it bridges notches
    where dark patina on a rim fell below the level), then simplified
    (Douglas-Peucker, 0.3 px) to 16-40 vertices.
    material (nested radio): a *brightness heuristic*, not numismatics: coins whose
    median grey is >= 165 are "silver", the others "bronze".
    Stage history: the Label stage misses the two coins at the right end of the
    bottom row and calls one coin the other material; the Review stage adds and fixes
    them and equals the final answer.
astronaut.png (512x512), coffee.png (600x400): hand-placed coordinates, read off
    gridded, magnified crops of the photographs and checked on rendered overlays.
    Rotated boxes are consistent by construction: corners are computed from
    (centre, width, height, rotation); x, y is the top-left corner of the unrotated
    box (so rotation pivots on the centre). The handle's rotated box is the
    minimum-area rectangle of its hand-traced outline.
    coffee surface: image analysis. Inside the cup opening (an ellipse around it),
    pixels with R - B > 100 (crema and its dark meniscus; the white porcelain has
    R - B < 90), largest component, holes filled, opened (r=2). Its traced contour
    (simplified, 0.5 px) is the hole of the `cup` segmentation and its pixels are the
    `coffee` brush class. The `saucer` brush class is the hand-placed saucer outline
    minus the cup and spoon shapes. The brush PNG is written as the platform writes
    it: RGBA, image size, transparent background, painted pixels opaque in the
    ontology colour, no antialiasing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
from collections import deque
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
BUCKET = "https://ango-sample.s3.amazonaws.com"
AMZ_DATE = "20260901T080000Z"
LABELER = "maria.labeler@example.com"
REVIEWER = "tom.reviewer@example.com"


# ----------------------------------------------------------------------------- ids
def hexid(name: str, n: int = 24) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:n]


def oid(name: str) -> str:
    """objectId / schemaId: 23 hex characters, as in the platform's samples."""
    return hexid(name, 23)


def signed(key: str) -> str:
    sig = hashlib.sha256(("sample-signature:" + key).encode()).hexdigest()
    return (
        f"{BUCKET}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential=AKIAEXAMPLEEXAMPLE00%2F20260901%2Feu-central-1%2Fs3%2Faws4_request"
        f"&X-Amz-Date={AMZ_DATE}&X-Amz-Expires=120000&X-Amz-SignedHeaders=host"
        f"&X-Amz-Signature={sig}"
    )


def r2(v):
    """Round coordinates to 2 decimals (keeps the JSON small)."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return [r2(x) for x in v]
    return round(float(v), 2)


# ------------------------------------------------------------------- image helpers
def gauss(a: np.ndarray, s: float) -> np.ndarray:
    r = int(3 * s)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    k /= k.sum()
    p = np.pad(a, ((0, 0), (r, r)), mode="reflect")
    a = sum(k[i] * p[:, i : i + a.shape[1]] for i in range(2 * r + 1))
    p = np.pad(a, ((r, r), (0, 0)), mode="reflect")
    return sum(k[i] * p[i : i + a.shape[0]] for i in range(2 * r + 1))


def morph(m: np.ndarray, r: int, op: str) -> np.ndarray:
    """Binary erosion ('ero') or dilation ('dil') with a disc of radius r."""
    h, w = m.shape
    p = np.pad(m, r, constant_values=(op == "ero"))
    out = np.ones_like(m) if op == "ero" else np.zeros_like(m)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dx * dx + dy * dy <= r * r + r * 0.5:
                s = p[r + dy : r + dy + h, r + dx : r + dx + w]
                out = (out & s) if op == "ero" else (out | s)
    return out


def label(mask: np.ndarray):
    """4-connected components: (labels, count)."""
    h, w = mask.shape
    lab = np.zeros((h, w), np.int32)
    n = 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if lab[y0, x0]:
            continue
        n += 1
        lab[y0, x0] = n
        q = deque([(y0, x0)])
        while q:
            y, x = q.popleft()
            for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not lab[yy, xx]:
                    lab[yy, xx] = n
                    q.append((yy, xx))
    return lab, n


def fill_holes(m: np.ndarray) -> np.ndarray:
    lab, n = label(~m)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])))
    out = m.copy()
    for k in range(1, n + 1):
        if k not in border:
            out[lab == k] = True
    return out


_NB = [(0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1)]


def trace(mask: np.ndarray):
    """Moore-neighbour tracing of the outer boundary of one blob: [(x, y)] pixel
    centres in export coordinates (pixel (x, y) covers [x, x+1) x [y, y+1))."""
    m = np.pad(mask, 1)
    ys, xs = np.nonzero(m)
    i = np.lexsort((xs, ys))[0]
    start = cur = (ys[i], xs[i])
    back = (start[0], start[1] - 1)
    out = [start]
    for _ in range(4 * m.size):
        d = _NB.index((back[0] - cur[0], back[1] - cur[1]))
        for k in range(1, 9):
            dy, dx = _NB[(d + k) % 8]
            c = (cur[0] + dy, cur[1] + dx)
            if m[c]:
                pdy, pdx = _NB[(d + k - 1) % 8]
                back, cur = (cur[0] + pdy, cur[1] + pdx), c
                break
        if cur == start:
            break
        out.append(cur)
    return [(float(x) - 0.5, float(y) - 0.5) for y, x in out]


def _dp(pts: np.ndarray, eps: float) -> np.ndarray:
    if len(pts) < 3:
        return pts
    a, b = pts[0], pts[-1]
    ab = b - a
    L = math.hypot(*ab)
    if L > 0:
        d = np.abs(ab[0] * (pts[:, 1] - a[1]) - ab[1] * (pts[:, 0] - a[0])) / L
    else:
        d = np.hypot(*(pts - a).T)
    i = int(np.argmax(d))
    if d[i] > eps:
        return np.vstack([_dp(pts[: i + 1], eps)[:-1], _dp(pts[i:], eps)])
    return np.vstack([a, b])


def simplify_ring(ring, eps: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring (open representation in, open out)."""
    r = np.asarray(ring, float)
    i = int(np.argmax(np.hypot(*(r - r.mean(0)).T)))
    r = np.roll(r, -i, 0)
    j = int(np.argmax(np.hypot(*(r - r[0]).T)))
    return np.vstack([_dp(r[: j + 1], eps)[:-1], _dp(np.vstack([r[j:], r[:1]]), eps)[:-1]])


def raster(rings, size) -> np.ndarray:
    """Even-odd fill of rings with the pixel-centre rule (Pillow draws on integer
    pixel grids, so shift by -0.5: pixel (x, y) has its centre at x + 0.5)."""
    im = Image.new("L", size, 0)
    out = np.zeros((size[1], size[0]), bool)
    for ring in rings:
        im.paste(0, (0, 0) + size)
        ImageDraw.Draw(im).polygon([(x - 0.5, y - 0.5) for x, y in ring], fill=1)
        out ^= np.asarray(im, bool)
    return out


def hull(pts):
    pts = sorted(set(map(tuple, pts)))

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lo, up = [], []
    for p in pts:
        while len(lo) >= 2 and cross(lo[-2], lo[-1], p) <= 0:
            lo.pop()
        lo.append(p)
    for p in reversed(pts):
        while len(up) >= 2 and cross(up[-2], up[-1], p) <= 0:
            up.pop()
        up.append(p)
    return lo[:-1] + up[:-1]


# --------------------------------------------------------------- geometry builders
def rbox(cx, cy, w, h, deg):
    """Rotated box: Ango keys + corners (TL, TR, BR, BL of the rotated box)."""
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    corners = [
        (cx + dx * c - dy * s, cy + dx * s + dy * c)
        for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
    ]
    return {
        "x": r2(cx - w / 2),
        "y": r2(cy - h / 2),
        "width": r2(w),
        "height": r2(h),
        "rotation": r2(deg),
        "corners": r2(corners),
    }


def min_area_rect(pts):
    """Minimum-area enclosing rectangle (tried on every hull edge) -> rbox dict."""
    hp = np.asarray(hull(pts), float)
    best = None
    for i in range(len(hp)):
        e = hp[(i + 1) % len(hp)] - hp[i]
        t = math.atan2(e[1], e[0])
        u = hp @ np.array([math.cos(t), math.sin(t)])
        v = hp @ np.array([-math.sin(t), math.cos(t)])
        area = (u.max() - u.min()) * (v.max() - v.min())
        if best is None or area < best[0] - 1e-9:
            best = (area, t, u.min(), u.max(), v.min(), v.max())
    _, t, u0, u1, v0, v1 = best
    c, s = math.cos(t), math.sin(t)
    uc, vc = (u0 + u1) / 2, (v0 + v1) / 2
    cx, cy = uc * c - vc * s, uc * s + vc * c
    deg, w, h = math.degrees(t), u1 - u0, v1 - v0
    if w < h:  # the long side is the width
        deg, w, h = deg + 90, h, w
    deg = (deg + 90) % 180 - 90  # same rectangle, rotation in [-90, 90)
    return rbox(cx, cy, w, h, deg)


# -------------------------------------------------------------------------- coins
def coin_polygons():
    im = Image.open(IMAGES / "coins.png").convert("L")
    a = np.asarray(im).astype(float)
    H, W = a.shape
    bg = np.asarray(
        im.filter(ImageFilter.MinFilter(31)).filter(ImageFilter.GaussianBlur(20))
    ).astype(float)
    m = (a - bg) > 40
    m[:3] = m[-3:] = False
    m[:, :3] = m[:, -3:] = False
    m = morph(morph(m, 7, "ero"), 7, "dil")
    lab, n = label(m)
    sizes = np.bincount(lab.ravel())
    keep = [k for k in range(1, n + 1) if sizes[k] >= 800 and a[lab == k].mean() >= 110]
    assert len(keep) == 24, len(keep)
    sm = gauss(a, 1.0)

    def sample(x, y):
        x = np.clip(x - 0.5, 0, W - 1.001)
        y = np.clip(y - 0.5, 0, H - 1.001)
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = x - x0, y - y0
        return (
            sm[y0, x0] * (1 - fx) * (1 - fy)
            + sm[y0, x0 + 1] * fx * (1 - fy)
            + sm[y0 + 1, x0] * (1 - fx) * fy
            + sm[y0 + 1, x0 + 1] * fx * fy
        )

    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    th = np.arange(72) * 2 * np.pi / 72
    coins = []
    for k in keep:
        sel = lab == k
        cx, cy = xx[sel].mean(), yy[sel].mean()
        R = math.sqrt(sel.sum() / math.pi)
        d = np.hypot(xx - cx, yy - cy)
        bgl = np.percentile(a[(d > 1.35 * R) & (d < 1.7 * R)], 25)
        level = float(np.median(a[d < 0.8 * R]))
        thr = bgl + 0.4 * (level - bgl)
        rs = np.arange(0.5 * R, 1.3 * R, 0.25)
        rad = []
        for t in th:
            v = sample(cx + rs * np.cos(t), cy + rs * np.sin(t))
            below = v < thr
            # the rim is the last crossing before a sustained (>= 1.5 px) drop to background
            run = np.array([below[j : j + 6].all() for j in range(len(v))])
            i = (np.argmax(run) if run.any() else len(v)) - 1
            i = max(i, 0)
            rad.append(
                rs[i] + (v[i] - thr) / (v[i] - v[i + 1]) * 0.25 if i + 1 < len(rs) else rs[i]
            )
        rad = np.minimum(np.array(rad), 1.12 * np.median(rad))
        rad = np.array(
            [np.median(np.take(rad, range(j - 2, j + 3), mode="wrap")) for j in range(72)]
        )
        ring = np.c_[np.clip(cx + rad * np.cos(th), 0, W), np.clip(cy + rad * np.sin(th), 0, H)]
        # coins are convex discs: the hull bridges notches cut by dark patina on the rim
        poly = simplify_ring(hull(ring), 0.3)
        assert 16 <= len(poly) <= 40, len(poly)
        coins.append({"poly": poly, "cx": cx, "cy": cy, "level": level})
    # reading order: rows (by centre y, ~70 px apart), then left to right
    coins.sort(key=lambda c: (round(c["cy"] / 70), c["cx"]))
    return coins


def coffee_surface():
    a = np.asarray(Image.open(IMAGES / "coffee.png").convert("RGB")).astype(int)
    H, W, _ = a.shape
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    roi = ((xx - 288) / 100) ** 2 + ((yy - 142) / 66) ** 2 < 1
    m = roi & ((a[..., 0] - a[..., 2]) > 100) & (a[..., 2] < 0.28 * a[..., 0])
    lab, n = label(m)
    big = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    m = fill_holes(lab == big)
    m = morph(morph(m, 2, "ero"), 2, "dil")
    lab, n = label(m)
    m = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    # the visible surface is convex (an ellipse cut by the cup's inner wall): the convex
    # hull of the traced contour closes the notch left by the highlight on the crema
    ring = simplify_ring(hull(trace(m)), 0.5)
    return ring, raster([ring], (W, H))


# ------------------------------------------------------------------ hand-placed data
# astronaut.png (512 x 512)
FLAG = [
    (0, 0),
    (60, 0),
    (62, 40),
    (64, 85),
    (72, 125),
    (82, 165),
    (92, 200),
    (97, 212),
    (85, 235),
    (55, 265),
    (40, 290),
    (32, 320),
    (25, 350),
    (20, 390),
    (20, 430),
    (22, 470),
    (25, 512),
    (0, 512),
]
HELMET = [
    (276, 512),
    (278, 482),
    (284, 450),
    (294, 422),
    (310, 394),
    (330, 374),
    (354, 358),
    (378, 347),
    (406, 342),
    (434, 346),
    (458, 360),
    (478, 382),
    (492, 410),
    (498, 438),
    (506, 456),
    (512, 462),
    (512, 512),
]
STRAP = [(258, 334), (265, 362), (269, 410), (270, 460), (270, 509)]
KEYPOINTS = [
    ("right_eye", (204.5, 100.5)),
    ("left_eye", (245.5, 103.0)),
    ("nose", (222.5, 128.0)),
    ("mouth", (224.0, 145.0)),
    ("chin", (226.0, 176.0)),
    ("right_shoulder", (75.0, 300.0)),
    ("left_shoulder", (335.0, 300.0)),
]

# coffee.png (600 x 400)
CUP = [
    (172, 115),
    (177, 85),
    (193, 57),
    (222, 35),
    (258, 22),
    (290, 18),
    (326, 21),
    (360, 33),
    (388, 53),
    (403, 78),
    (408, 110),
    (405, 140),
    (398, 178),
    (386, 208),
    (372, 232),
    (355, 252),
    (335, 268),
    (315, 279),
    (290, 284),
    (265, 281),
    (253, 277),
    (238, 298),
    (222, 307),
    (205, 305),
    (197, 292),
    (196, 271),
    (199, 252),
    (204, 236),
    (196, 220),
    (186, 190),
    (178, 160),
    (174, 135),
]
HANDLE = [
    (207, 236),
    (238, 232),
    (255, 242),
    (259, 255),
    (253, 275),
    (238, 298),
    (222, 307),
    (205, 305),
    (197, 292),
    (196, 271),
    (199, 252),
]
SPOON = [
    (371, 236),
    (384, 200),
    (395, 160),
    (404, 120),
    (407, 90),
    (406, 75),
    (411, 66),
    (419, 66),
    (424, 72),
    (421, 90),
    (414, 120),
    (403, 162),
    (392, 202),
    (380, 238),
    (392, 250),
    (403, 270),
    (406, 292),
    (399, 312),
    (384, 323),
    (361, 326),
    (341, 319),
    (329, 303),
    (326, 283),
    (332, 263),
    (346, 249),
    (360, 241),
]
SAUCER = [
    (172, 88),
    (140, 105),
    (112, 130),
    (92, 165),
    (80, 210),
    (79, 260),
    (92, 300),
    (120, 340),
    (165, 370),
    (220, 385),
    (280, 388),
    (340, 382),
    (395, 362),
    (435, 335),
    (462, 300),
    (476, 260),
    (478, 210),
    (465, 160),
    (440, 120),
    (410, 100),
]
COLORS = {"coffee": "#795548", "saucer": "#B71C1C"}


# ------------------------------------------------------------------------ ontology
def radio(title, options):
    return {
        "schemaId": oid("cls:" + title),
        "title": title,
        "tool": "radio",
        "required": False,
        "options": [{"value": o, "schemaId": oid(f"opt:{title}:{o}")} for o in options],
        "classifications": [],
    }


IMAGE_QUALITY = [
    "grayscale",
    "uneven-lighting",
    "studio-lighting",
    "glare",
    "shallow-depth-of-field",
]
JOINTS = [k for k, _ in KEYPOINTS]
CLASSES = [  # (title, tool, colour, nested classifications)
    ("coin", "polygon", "#FFC107", [radio("material", ["bronze", "silver"])]),
    ("person", "bounding-box", "#2196F3", []),
    ("face", "bounding-box", "#00BCD4", []),
    ("shuttle", "bounding-box", "#9C27B0", []),
    ("patch", "bounding-box", "#3F51B5", []),
    ("flag", "segmentation", "#F44336", []),
    ("helmet", "segmentation", "#607D8B", []),
    ("name-tag", "rotated-bounding-box", "#CDDC39", []),
    ("keypoint", "point", "#4CAF50", [radio("joint", JOINTS)]),
    ("strap", "polyline", "#FFEB3B", []),
    ("cup", "segmentation", "#E91E63", []),
    ("spoon", "polygon", "#9E9E9E", []),
    ("handle", "rotated-bounding-box", "#FF9800", []),
    ("coffee", "brush", COLORS["coffee"], []),
    ("saucer", "brush", COLORS["saucer"], []),
]
SCHEMA = {t: oid("tool:" + t) for t, *_ in CLASSES}
NESTED = {t: n for t, _, _, n in CLASSES}


def ontology():
    return {
        "tools": [
            {
                "schemaId": SCHEMA[t],
                "title": t,
                "tool": tool,
                "color": col,
                "required": False,
                "classifications": nested,
                "options": [],
            }
            for t, tool, col, nested in CLASSES
        ],
        "classifications": [
            {
                "schemaId": oid("cls:image-quality"),
                "title": "image-quality",
                "tool": "checkbox",
                "required": False,
                "options": [
                    {"value": o, "schemaId": oid("opt:image-quality:" + o)} for o in IMAGE_QUALITY
                ],
                "classifications": [],
            },
            {
                "schemaId": oid("cls:notes"),
                "title": "notes",
                "tool": "text",
                "required": False,
                "options": [],
                "classifications": [],
            },
        ],
        "relations": [
            {"schemaId": oid("rel:holds"), "title": "holds", "tool": "single", "options": []},
            {
                "schemaId": oid("rel:same-person"),
                "title": "same-person",
                "tool": "group",
                "options": [],
            },
        ],
    }


# -------------------------------------------------------------------- export items
BASE_MS = 1788249600000  # 2026-09-01T08:00:00Z


def iso(ms: int) -> str:
    import datetime as _dt

    t = _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Builder:
    """Makes tool / classification / relation entries with stable ids."""

    def __init__(self, asset: str, t0_ms: int, epoch_ms_meta: bool):
        self.asset, self.t, self.epoch = asset, t0_ms, epoch_ms_meta

    def meta(self, who=LABELER):
        self.t += 7_351
        return {"createdAt": self.t if self.epoch else iso(self.t), "createdBy": who}

    def nested(self, cls, title, answer, key):
        sch = next(c for c in NESTED[cls] if c["title"] == title)
        return {
            "objectId": oid(f"{self.asset}:{key}:{title}"),
            "schemaId": sch["schemaId"],
            "tool": sch["tool"],
            "title": title,
            "answer": answer,
            "classifications": [],
        }

    def tool(self, cls, key, geometry_key, geometry, nested=(), who=LABELER):
        return {
            geometry_key: geometry,
            "objectId": oid(f"{self.asset}:{key}"),
            "schemaId": SCHEMA[cls],
            "title": cls,
            "classifications": list(nested),
            "metadata": self.meta(who),
        }

    def image_cls(self, title, answer, key, who=LABELER):
        tool = "checkbox" if title == "image-quality" else "text"
        return {
            "objectId": oid(f"{self.asset}:{key}"),
            "schemaId": oid("cls:" + title),
            "tool": tool,
            "title": title,
            "answer": answer,
            "classifications": [],
            "metadata": self.meta(who),
        }


def zone(region, holes=()):
    return {"region": r2(region), "holes": [r2(h) for h in holes]}


def task_base(asset_name, stage_hist, final, brush="", updated_by=REVIEWER):
    last = stage_hist[-1]
    return {
        "taskId": hexid("task:" + asset_name),
        "type": "default",
        "stage": "Complete",
        "stageId": "Complete",
        "updatedAt": last["completedAt"],
        "updatedBy": updated_by,
        "totalDuration": sum(s["duration"] for s in stage_hist),
        "duration": 0,
        "totalIdleDuration": sum(s["idleDuration"] for s in stage_hist),
        "totalBlurDuration": 0,
        **final,
        "brushDataUrl": brush,
        "medicalBrushDataUrl": "",
        "stageHistory": stage_hist,
    }


def stage(name, done_ms, who, content, duration, brush=""):
    h = hexid("stage:" + name, 32)  # workflow stages other than Start/Complete have uuids
    sid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
    return {
        "stage": name,
        "stageId": sid,
        "duration": duration,
        "idleDuration": duration // 9,
        "blurDuration": 0,
        "completedAt": iso(done_ms),
        "completedBy": who,
        "tools": content["tools"],
        "classifications": content["classifications"],
        "relations": content["relations"],
        "brushDataUrl": brush,
        "medicalBrushDataUrl": "",
        "taskHistory": {"_id": hexid(f"history:{name}:{done_ms}")},
    }


def asset_entry(name, size, task, batches):
    aid = hexid("asset:" + name)
    return {
        "asset": signed(f"{aid}.png"),
        "assetId": aid,
        "externalId": name,
        "metadata": {"width": size[0], "height": size[1]},
        "batches": batches,
        "task": task,
    }


def build_coins():
    coins = coin_polygons()
    b = Builder("coins", BASE_MS + 3_600_000, epoch_ms_meta=True)
    tools = []
    for i, c in enumerate(coins, 1):
        mat = "silver" if c["level"] >= 165 else "bronze"
        key = f"coin{i:02d}"
        tools.append(
            b.tool("coin", key, "polygon", r2(c["poly"]), [b.nested("coin", "material", mat, key)])
        )
    cls = [b.image_cls("image-quality", ["grayscale", "uneven-lighting"], "quality")]
    final = {"tools": tools, "classifications": cls, "relations": []}
    # the labeler missed the last two coins of the bottom row and called coin 7 the
    # other material; the reviewer fixed both
    label_tools = json.loads(json.dumps(tools[:-2]))
    nested = label_tools[6]["classifications"][0]
    nested["answer"] = "bronze" if nested["answer"] == "silver" else "silver"
    t_label, t_rev = BASE_MS + 4_200_000, BASE_MS + 5_100_000
    hist = [
        stage(
            "Label",
            t_label,
            LABELER,
            {"tools": label_tools, "classifications": cls, "relations": []},
            512_000,
        ),
        stage("Review", t_rev, REVIEWER, final, 143_000),
    ]
    return asset_entry("coins.png", (384, 303), task_base("coins", hist, final), ["train"])


def bbox(x, y, w, h):
    return {"x": x, "y": y, "width": w, "height": h}


def build_astronaut():
    b = Builder("astronaut", BASE_MS + 6_000_000, epoch_ms_meta=False)
    person = b.tool("person", "person", "bounding-box", bbox(18, 14, 348, 498))
    face = b.tool("face", "face", "bounding-box", bbox(182, 72, 92, 106))
    shuttle = b.tool("shuttle", "shuttle", "bounding-box", bbox(352, 0, 118, 290))
    # dragged from the bottom-right corner: negative width and height, as the platform writes
    patch = b.tool("patch", "patch", "bounding-box", bbox(210, 424, -77, -76))
    flag = b.tool("flag", "flag", "segmentation", {"zones": [zone(FLAG)]})
    helmet = b.tool("helmet", "helmet", "segmentation", {"zones": [zone(HELMET)]})
    tag = b.tool("name-tag", "nametag", "rotated-bounding-box", rbox(303, 358, 50, 33, 7))
    kps = [
        b.tool("keypoint", "kp:" + j, "point", r2(p), [b.nested("keypoint", "joint", j, "kp:" + j)])
        for j, p in KEYPOINTS
    ]
    strap = b.tool("strap", "strap", "polyline", r2(STRAP))
    tools = [person, face, shuttle, patch, flag, helmet, tag, *kps, strap]
    rel = [
        {
            "objectId": oid("astronaut:rel:holds"),
            "schemaId": oid("rel:holds"),
            "title": "holds",
            "from": person["objectId"],
            "to": helmet["objectId"],
            "direction": "straight",
            "metadata": b.meta(),
        },
        {
            "objectId": oid("astronaut:rel:same-person"),
            "schemaId": oid("rel:same-person"),
            "title": "same-person",
            "group": [person["objectId"], face["objectId"]] + [k["objectId"] for k in kps],
            "metadata": b.meta(),
        },
    ]
    cls = [
        b.image_cls("image-quality", ["studio-lighting"], "quality"),
        b.image_cls("notes", "Flag and shuttle model are background props.", "notes"),
    ]
    final = {"tools": tools, "classifications": cls, "relations": rel}
    # Label stage: the face box was drawn too low and too wide (reviewer corrected it),
    # and the strap polyline was not there yet
    label_tools = json.loads(json.dumps([t for t in tools if t["title"] != "strap"]))
    label_tools[1]["bounding-box"] = bbox(176, 84, 106, 108)
    t_label, t_rev = BASE_MS + 7_000_000, BASE_MS + 8_000_000
    hist = [
        stage(
            "Label",
            t_label,
            LABELER,
            {"tools": label_tools, "classifications": cls, "relations": rel},
            733_000,
        ),
        stage("Review", t_rev, REVIEWER, final, 201_000),
    ]
    return asset_entry(
        "astronaut.png", (512, 512), task_base("astronaut", hist, final), ["train", "keypoints"]
    )


def brush_png(surface):
    size = (600, 400)
    saucer = raster([SAUCER], size) & ~raster([CUP], size) & ~raster([SPOON], size) & ~surface
    rgba = np.zeros((size[1], size[0], 4), np.uint8)
    for m, name in ((saucer, "saucer"), (surface, "coffee")):
        col = COLORS[name]
        rgba[m] = [int(col[1:3], 16), int(col[3:5], 16), int(col[5:7], 16), 255]
    return rgba


def build_coffee():
    hole, surface = coffee_surface()
    b = Builder("coffee", BASE_MS + 9_000_000, epoch_ms_meta=False)
    cup = b.tool("cup", "cup", "segmentation", {"zones": [zone(CUP, [hole])]})
    spoon = b.tool("spoon", "spoon", "polygon", r2(SPOON))
    handle = b.tool("handle", "handle", "rotated-bounding-box", min_area_rect(HANDLE))
    spoon["metadata"]["createdAt"] = BASE_MS + 9_020_000  # epoch ms on this one
    cls = [b.image_cls("image-quality", ["glare", "shallow-depth-of-field"], "quality")]
    final = {"tools": [cup, spoon, handle], "classifications": cls, "relations": []}
    aid = hexid("asset:coffee.png")
    t_label = BASE_MS + 10_000_000
    brush = signed(f"{aid}-{t_label}.png")
    hist = [stage("Label", t_label, LABELER, final, 654_000, brush=brush)]
    task = task_base("coffee", hist, final, brush=brush, updated_by=LABELER)
    return asset_entry("coffee.png", (600, 400), task, ["train", "brush"]), brush_png(surface)


# ------------------------------------------------------------------------ preview
def preview(export, onto, brushes, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    colour = {t["title"]: t["color"] for t in onto["tools"]}
    for a in export:
        im = Image.open(IMAGES / a["externalId"]).convert("RGB")
        S = 2
        im = im.resize((im.width * S, im.height * S), Image.LANCZOS)
        if a["assetId"] in brushes:
            br = Image.fromarray(brushes[a["assetId"]]).resize(im.size, Image.NEAREST)
            al = np.asarray(br)[..., 3] // 2
            br.putalpha(Image.fromarray(al))
            im.paste(br, (0, 0), br)
        d = ImageDraw.Draw(im)
        P = lambda pts: [(x * S, y * S) for x, y in pts]  # noqa: E731
        for t in a["task"]["tools"]:
            c = colour[t["title"]]
            if "polygon" in t:
                d.polygon(P(t["polygon"]), outline=c, width=2)
            elif "polyline" in t:
                d.line(P(t["polyline"]), fill=c, width=3)
            elif "point" in t:
                x, y = t["point"]
                d.ellipse([x * S - 5, y * S - 5, x * S + 5, y * S + 5], outline=c, width=3)
            elif "bounding-box" in t:
                g = t["bounding-box"]
                x0, x1 = sorted((g["x"], g["x"] + g["width"]))
                y0, y1 = sorted((g["y"], g["y"] + g["height"]))
                d.rectangle([x0 * S, y0 * S, x1 * S, y1 * S], outline=c, width=2)
            elif "rotated-bounding-box" in t:
                d.polygon(P(t["rotated-bounding-box"]["corners"]), outline=c, width=2)
            elif "segmentation" in t:
                for z in t["segmentation"]["zones"]:
                    d.polygon(P(z["region"]), outline=c, width=2)
                    for h in z["holes"]:
                        d.polygon(P(h), outline="#FFFFFF", width=2)
            d.text(P([next(iter(_anchor(t)))])[0], t["title"], fill=c)
        im.save(out / (Path(a["externalId"]).stem + "_overlay.png"))


def _anchor(t):
    g = next(
        t[k]
        for k in (
            "polygon",
            "polyline",
            "point",
            "bounding-box",
            "rotated-bounding-box",
            "segmentation",
        )
        if k in t
    )
    if isinstance(g, dict) and "zones" in g:
        return [g["zones"][0]["region"][0]]
    if isinstance(g, dict) and "corners" in g:
        return [g["corners"][0]]
    if isinstance(g, dict):
        return [(g["x"], g["y"])]
    return [g] if not isinstance(g[0], list) else [g[0]]


# --------------------------------------------------------------------------- main
def dumps_compact(obj) -> str:
    """Indented JSON, but coordinate lists kept on one line (keeps the file small)."""
    text = json.dumps(obj, indent=1)
    num = r"-?\d[\d.eE+-]*"
    text = re.sub(
        r"\[\s*(%s(?:,\s*%s)*)\s*\]" % (num, num),
        lambda m: "[" + re.sub(r"\s+", "", m.group(1)).replace(",", ", ") + "]",
        text,
    )
    while True:  # lists whose items are one-line lists
        new = re.sub(
            r"\[\s*(\[[^\n]*?\](?:,\s*\[[^\n]*?\])*)\s*\]",
            lambda m: "[" + re.sub(r"\],\s+\[", "], [", m.group(1)) + "]",
            text,
        )
        if new == text:
            return text
        text = new


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preview", type=Path, help="also draw overlays into this folder")
    args = ap.parse_args(argv)
    coffee, brush = build_coffee()
    export = [build_coins(), build_astronaut(), coffee]
    onto = ontology()
    (HERE / "sample_export.json").write_text(dumps_compact(export) + "\n")
    (HERE / "ontology.json").write_text(json.dumps(onto, indent=2) + "\n")
    # Where `ango-torch prefetch` puts it: _brush/<assetId>.<content key>.png.
    from ango_torch import load_export
    from ango_torch.assets.fetch import asset_path
    from ango_torch.assets.prefetch import prefetch_items

    (item,) = [i for i in prefetch_items(load_export(export)) if i.kind == "brush"]
    name = asset_path(
        str(IMAGES),
        asset_id=item.asset_id,
        external_id=item.external_id,
        kind="brush",
        content_key=item.content_key,
    )
    Path(name).parent.mkdir(exist_ok=True)
    Image.fromarray(brush, "RGBA").save(name, optimize=True)
    if args.preview:
        preview(export, onto, {coffee["assetId"]: brush}, args.preview)


if __name__ == "__main__":
    main()
