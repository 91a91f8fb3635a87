"""Which objects become which labels: the class list of a dataset and its brush colours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .brush import parse_hex_color
from .errors import OntologyError
from .index import ExportIndex
from .ontology import Ontology
from .records import ToolKind

__all__ = ["BACKGROUND", "TASKS", "ClassMap", "resolve_classes", "task_kinds"]

BACKGROUND = "__background__"
TASKS = ("detection", "instance", "semantic")

# The tool kinds that make instances (or painted pixels) for each task.  Bounding boxes
# have no mask, so they take part in detection only.
_AREA = (ToolKind.ROTATED_BOUNDING_BOX, ToolKind.POLYGON, ToolKind.SEGMENTATION)
_TASK_KINDS = {
    "detection": (ToolKind.BOUNDING_BOX, *_AREA),
    "instance": _AREA,
    "semantic": _AREA,
}


def task_kinds(task: str) -> tuple[ToolKind, ...]:
    """The tool kinds that give instances (or painted pixels) for ``task``."""
    return _TASK_KINDS[task]


@dataclass(frozen=True, slots=True)
class ClassMap:
    """Class titles in label order (``titles[0]`` is the background) and brush colours.

    ``brush`` maps an RGB colour to a label.
    """

    titles: tuple[str, ...]
    brush: Mapping[tuple[int, int, int], int]

    def label_of_titles(self, titles: Sequence[str]) -> npt.NDArray[np.int64]:
        """Label of each title (``-1`` for titles that are not classes)."""
        lookup = {t: k for k, t in enumerate(self.titles) if k}
        return np.array([lookup.get(t, -1) for t in titles], np.int64)


def _brush_table(
    colors: Mapping[str, str], titles: Sequence[str]
) -> dict[tuple[int, int, int], int]:
    lookup = {t: k for k, t in enumerate(titles)}
    out: dict[tuple[int, int, int], int] = {}
    for color, title in colors.items():
        if title in lookup:
            out[parse_hex_color(color)] = lookup[title]
    return out


def resolve_classes(
    index: ExportIndex,
    *,
    task: str,
    snapshot_rows: npt.NDArray[np.int32],
    ontology: Ontology | None = None,
    classes: Sequence[str] | None = None,
    brush_colors: Mapping[str, str] | None = None,
    discovered_brush: Sequence[str] = (),
    brush: bool = True,
) -> ClassMap:
    """The class list of a dataset.

    Order: ``classes`` when given; else the ontology's order (its tools of the kinds
    the task uses, and its brush classes); else titles sorted alphabetically.  Brush
    colours come from ``brush_colors`` (``{"#rrggbb": title}``), else the ontology,
    else ``discovered_brush`` colours (one class per distinct colour, named by it).

    Raises:
        OntologyError: ``classes`` names a title the ontology does not have.
    """
    kinds = {k.key for k in task_kinds(task)}
    colors: dict[str, str] = {}
    if not brush:
        pass  # the task leaves brush masks out: no brush classes
    elif brush_colors is not None:
        colors = {c.lower(): t for c, t in brush_colors.items()}
    elif ontology is not None:
        colors = ontology.brush_colors()
    else:
        colors = {c.lower(): c.lower() for c in discovered_brush}
    if classes is not None:
        titles = list(dict.fromkeys(classes))
        if ontology is not None:
            known = set(ontology.titles())
            unknown = [t for t in titles if t not in known and t not in colors.values()]
            if unknown:
                raise OntologyError(
                    f"classes {unknown} are not in the ontology; it has {sorted(known)}"
                )
    elif ontology is not None:
        titles = [
            t.title
            for t in ontology.tools
            if t.tool in kinds or (brush and t.tool == "brush" and t.color is not None)
        ]
        titles = list(dict.fromkeys(titles))
    else:
        present = _present_titles(index, snapshot_rows, task)
        titles = sorted(set(present) | set(colors.values()))
    if BACKGROUND in titles:
        raise OntologyError(f"{BACKGROUND!r} is reserved for label 0")
    all_titles = (BACKGROUND, *titles)
    return ClassMap(all_titles, _brush_table(colors, all_titles))


def _present_titles(
    index: ExportIndex, snapshot_rows: npt.NDArray[np.int32], task: str
) -> list[str]:
    """Titles of the task's kinds in the selected snapshots."""
    from .selection import selected_objects

    in_rows = selected_objects(index, snapshot_rows)
    kind_ok = np.isin(index.obj_kind, [int(k) for k in task_kinds(task)])
    used = np.unique(index.obj_title[in_rows & kind_ok])
    return [index.titles[int(t)] for t in used]
