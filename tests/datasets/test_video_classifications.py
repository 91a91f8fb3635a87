"""Frame-level classifications of a video: an answer holds from its frame until changed
or stopped.

Expected answers per frame are read off the hand-written entries below (frame ranges
worked out by hand), not from the dataset's output.
"""

from __future__ import annotations

from builders import make_asset, make_box

import ango_torch


def test_frame_classifications_hold_until_changed_or_stopped() -> None:
    def weather(answer: str, page: int, **kw: object) -> dict[str, object]:
        return {"schemaId": "w", "title": "weather", "answer": answer, "page": page, **kw}

    tools = [make_box(2, 2, 4, 4, objectId="t", page=f) for f in range(9)]
    classifications = [
        weather("rain", 3),
        weather("sunny", 0),
        weather("rain", 6, interpolationStopped=True),
        # no page: the whole video
        {"schemaId": "c", "title": "camera", "answer": "fixed"},
    ]
    asset = make_asset(tools, external_id="v.mp4", classifications=classifications)
    asset["metadata"].update(frameTotal=9, frameRate=10)
    ds = ango_torch.AngoDataset([asset], task="detection", attributes=True)
    got = [ds.load_target(i, (11, 17))["classifications"] for i in range(len(ds))]
    # frames 0-2 sunny, 3-5 rain, 6-8 stopped (absent); camera on every frame
    assert got == (
        [{"weather": "sunny", "camera": "fixed"}] * 3
        + [{"weather": "rain", "camera": "fixed"}] * 3
        + [{"camera": "fixed"}] * 3
    )
