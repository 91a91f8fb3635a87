"""Brush colours as classes, when neither the ontology nor ``brush_colors=`` names them."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from ..errors import AngoTorchWarning, LimitError, where
from ..export.index import ExportIndex
from ..export.ontology import Ontology
from ..targets.arrays import limit_hint
from ..targets.brush import count_colors, distinct_colors
from ..targets.classes import ClassSpec, brush_color_source

__all__ = ["discover_brush_colors"]


def discover_brush_colors(
    masks: Iterable[tuple[int, npt.NDArray[np.uint8]]],
    *,
    index: ExportIndex,
    ontology: Ontology | None,
    brush_colors: Mapping[str, str] | None,
    classes: ClassSpec | None,
    cap: int,
) -> list[str]:
    """Distinct colours of the brush masks (``(asset row, RGBA [H, W, 4] uint8)``), sorted,
    when neither ``brush_colors`` nor the ontology names any (else ``[]``, masks unread).

    Raises:
        LimitError: More than ``cap`` distinct colours over the masks read so far.
    """
    if brush_color_source(ontology, brush_colors) != "discovered":
        return []
    found: Counter[str] = Counter()
    for a, rgba in masks:
        colors = distinct_colors(rgba, top=cap + 1)  # bounded, however noisy the PNG
        for (r, g, b), n in colors:
            found[f"#{r:02x}{g:02x}{b:02x}"] += n
        if len(found) > cap:
            name = index.string(index.asset_external_id[a])
            raise LimitError(
                f"{where(asset=name, index=a, field='brushDataUrl')}: {count_colors(rgba):,} "
                f"distinct brush colours in this mask; with earlier masks', over "
                f"max_brush_colors={cap:,}: without an ontology naming the brush colours "
                "each colour would become a class. Pass ontology= (with brush colours) "
                "or brush_colors={'#rrggbb': title}, or " + limit_hint("max_brush_colors")
            )
    if found:
        if ontology is None:
            why = "no ontology or brush_colors"
        else:
            why = "the ontology names no brush colours"
            colourless = [t.title for t in ontology.tools if t.tool == "brush"]
            if colourless:
                why += f" (its brush classes {colourless} have none)"
        kept = "" if classes is None else "; those not in classes= are left out and counted"
        warnings.warn(
            f"{why}: {len(found)} brush colours became classes named by colour "
            f"({', '.join(sorted(found))}){kept}",
            AngoTorchWarning,
            stacklevel=4,
        )
    return sorted(found)
