"""Shared fixtures; the export builders live in ``builders.py``."""

from __future__ import annotations

from typing import Any

import pytest
from builders import make_export


@pytest.fixture
def export_list() -> list[dict[str, Any]]:
    return make_export()
