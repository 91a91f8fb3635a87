"""Make the bundled video sample: a crop window panning over ``images/coffee.png``.

Writes ``pan.mp4`` (32 frames, 160×120, 8 fps, H.264 CRF 4 through PyAV's bundled
FFmpeg), ``video_export.json`` (every frame annotated) and ``video_keyframes.json``
(key frames only).  Frame ``t`` shows the photo's window at ``(X0 + DX·t, Y0 + DY·t)``;
its index is stamped as 8 black/white 8×8 blocks (bit 7 first) in the top-left corner.
Objects are fixed in the photo, so on frame ``t`` a photo box ``(x, y, w, h)`` is at
``(x - X0 - DX·t, y - Y0 - DY·t, w, h)``: linear in ``t``, exactly known.

Run from the repository root: ``python examples/data/video/make_video.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
FRAMES, W, H, FPS = 32, 160, 120, 8
X0, Y0, DX, DY = 100, 60, 2, 1  # window origin on the photo and its motion per frame
STOP = 20  # the "spoon" track stops on this frame
# Fixed photo-space boxes (x, y, w, h): inside every frame's window ([162, 260] × [91, 180]).
CUP = (170.0, 100.0, 50.0, 40.0)
SPOON = (225.0, 110.0, 20.0, 24.0)
PLATE = [(175.0, 150.0), (215.0, 145.0), (250.0, 160.0), (210.0, 175.0)]


def window(t: int) -> tuple[int, int]:
    """Top-left corner of frame ``t``'s window on the photo."""
    return X0 + DX * t, Y0 + DY * t


def stamp(frame: np.ndarray, t: int) -> None:
    """Write ``t`` as 8 blocks of 8×8 pixels (white = 1), bit 7 first, on row 0."""
    for bit in range(8):
        frame[0:8, bit * 8 : bit * 8 + 8] = 255 if (t >> (7 - bit)) & 1 else 0


def read_stamp(frame: np.ndarray) -> int:
    """The index stamped by :func:`stamp` in an ``[H, W, 3]`` (or ``[3, H, W]``) frame."""
    f = frame if frame.shape[-1] == 3 else frame.transpose(1, 2, 0)
    bits = [f[2:6, b * 8 + 2 : b * 8 + 6].mean() > 127 for b in range(8)]
    return int(sum(1 << (7 - i) for i, on in enumerate(bits) if on))


def source_frames() -> np.ndarray:
    """The ``[T, H, W, 3]`` uint8 frames that are encoded."""
    photo = np.asarray(Image.open(HERE.parent / "images" / "coffee.png").convert("RGB"))
    out = np.empty((FRAMES, H, W, 3), np.uint8)
    for t in range(FRAMES):
        x, y = window(t)
        out[t] = photo[y : y + H, x : x + W]
        stamp(out[t], t)
    return out


def encode(frames: np.ndarray, path: Path) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "4", "preset": "medium", "bf": "2"}  # B-frames: reordering
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _box(b: tuple[float, float, float, float], t: int) -> dict[str, float]:
    x, y = window(t)
    return {"x": b[0] - x, "y": b[1] - y, "width": b[2], "height": b[3]}


def _poly(t: int) -> list[list[float]]:
    x, y = window(t)
    return [[px - x, py - y] for px, py in PLATE]


def tools(frames: dict[str, list[int]]) -> list[dict[str, object]]:
    """Tool entries of the three tracks on the given frames of each."""
    out: list[dict[str, object]] = []
    for t in frames["cup"]:
        out.append(
            {
                "bounding-box": _box(CUP, t),
                "objectId": "cup-1",
                "title": "cup",
                "schemaId": "cup",
                "classifications": [],
                "page": t,
            }
        )
    for t in frames["plate"]:
        out.append(
            {
                "polygon": _poly(t),
                "objectId": "plate-1",
                "title": "plate",
                "schemaId": "plate",
                "classifications": [],
                "page": t,
            }
        )
    for t in frames["spoon"]:
        entry = {
            "bounding-box": _box(SPOON, t),
            "objectId": "spoon-1",
            "title": "spoon",
            "schemaId": "spoon",
            "classifications": [],
            "page": t,
        }
        if t == STOP:
            entry["interpolationStopped"] = True
        out.append(entry)
    return out


def export(frames: dict[str, list[int]]) -> list[dict[str, object]]:
    return [
        {
            "asset": "https://ango-sample.s3.amazonaws.com/pan.mp4",
            "assetId": "5f0e0c0c0c0c0c0c0c0c0c01",
            "externalId": "pan.mp4",
            "metadata": {"width": W, "height": H, "frameTotal": FRAMES, "frameRate": FPS},
            "batches": ["train"],
            "task": {
                "taskId": "5f0e0c0c0c0c0c0c0c0c0c02",
                "stage": "Complete",
                "tools": tools(frames),
                "classifications": [],
                "relations": [],
            },
        }
    ]


def main() -> None:
    encode(source_frames(), HERE / "pan.mp4")
    full = {
        "cup": list(range(FRAMES)),
        "plate": list(range(FRAMES)),
        "spoon": list(range(STOP + 1)),
    }
    keys = {"cup": [0, 16, FRAMES - 1], "plate": [0, FRAMES - 1], "spoon": [0, 10, STOP]}
    for name, frames in (("video_export.json", full), ("video_keyframes.json", keys)):
        (HERE / name).write_text(json.dumps(export(frames), indent=1) + "\n")


if __name__ == "__main__":
    main()
