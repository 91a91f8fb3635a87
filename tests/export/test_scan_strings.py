"""Splitting a JSON array: strings full of structural characters, at every chunk size.

Reference: Python's own ``json`` module (``json.loads`` of the whole text and of each
element the scanner yields); the generated strings hold quotes, backslashes (also runs
of them, so escapes of escapes), brackets and commas, which the scanner must ignore.
"""

from __future__ import annotations

import io
import json
import random

import pytest
from builders import json_depth

from ango_torch.export import _read, _scan
from ango_torch.limits import Limits

_ALPHABET = '"\\[]{},: ab\\\\"'


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 12)))


def _asset(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "externalId": f"{i}{_text(rng)}",
        "task": {
            "tools": [
                {"title": _text(rng), "points": [[rng.random(), 1.5]] * rng.randrange(3)}
                for _ in range(rng.randrange(3))
            ],
            "note": [_text(rng), {"k": _text(rng)}],
        },
    }


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_elements_equal_json_loads(seed: int, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    assets = [_asset(rng, i) for i in range(12)]
    text = json.dumps(assets, indent=rng.choice([None, 1])).encode()
    monkeypatch.setattr(_scan, "CHUNK", chunk)
    monkeypatch.setattr(_read, "CHUNK", chunk, raising=False)
    got = [json.loads(r.data) for r in _scan.iter_array(io.BytesIO(text), "t", Limits())]
    assert got == json.loads(text)
    assert _scan.max_depth(text) == json_depth(json.loads(text))
