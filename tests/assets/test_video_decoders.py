"""Decoder choice and failures of ango_torch.assets.video (no decoding maths here: the
frame-exactness checks are in tests/datasets/test_video.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ango_torch.assets import video
from ango_torch.errors import AngoTorchWarning, DecodeError, MissingDependencyError

PAN = Path(__file__).resolve().parents[2] / "examples" / "data" / "video" / "pan.mp4"


def test_auto_falls_back_to_pyav_once_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANGO_TORCH_VIDEO_DECODER", "auto")
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)  # import fails
    monkeypatch.setattr(video, "_warned", set())
    with pytest.warns(AngoTorchWarning, match="decoding video with PyAV"):
        assert video.decoder_name() == "pyav"
    assert video.decoder_name() == "pyav"  # said once per process (an error if it warned)


def test_missing_decoder_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingDependencyError, match=r"ango-torch\[video\]"):
        video.open_video(b"", label="asset 'x.mp4' (#0)", decoder="pyav")


@pytest.mark.parametrize("decoder", ["pyav", "torchcodec"])
def test_garbage_and_frames_past_the_end_are_decode_errors(decoder: str) -> None:
    if decoder == "torchcodec":
        pytest.importorskip("torchcodec")
    with pytest.raises(DecodeError, match=r"x\.mp4"):
        video.open_video(b"not a video", label="asset 'x.mp4' (#0)", decoder=decoder)  # type: ignore[arg-type]
    reader = video.open_video(PAN.read_bytes(), label="asset 'pan.mp4' (#0)", decoder=decoder)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="frame 32 is past the video's 32 frames"):
        reader.frames([0, 32])


def test_readers_are_cached_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANGO_TORCH_VIDEO_DECODER", "pyav")
    loads = []

    def load() -> bytes:
        loads.append(1)
        return PAN.read_bytes()

    a = video.cached_reader("pan-test", load)
    assert video.cached_reader("pan-test", load) is a and len(loads) == 1
    monkeypatch.setattr(video.os, "getpid", lambda: -12345)  # as seen from another process
    assert video.cached_reader("pan-test", load) is not a and len(loads) == 2
