"""Which objects become which labels: the class list of a dataset and its brush colours."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import OntologyError
from ..export.index import ExportIndex
from ..export.ontology import Ontology
from ..records import ToolKind
from .arrays import IGNORE
from .brush import (
    OTHER_COLORS,
    REPORTED_COLORS,
    UNLISTED,
    brush_to_class_map,
    distinct_colors,
    parse_hex_color,
)

__all__ = [
    "BACKGROUND",
    "TASKS",
    "BrushCounts",
    "ClassMap",
    "ClassSpec",
    "brush_color_source",
    "label_brush",
    "map_classes",
    "resolve_classes",
    "task_kinds",
]

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


RGB = tuple[int, int, int]

ClassSpec = Sequence[str] | Mapping[str, str | Sequence[str]]
"""What ``classes=`` accepts: titles to keep in label order, or ``{new title: source(s)}``
whose sources (titles, schemaIds or brush colours) merge into the new title."""


@dataclass(frozen=True, slots=True)
class ClassMap:
    """Class titles in label order (``titles[0]`` is the background) and brush colours.

    ``brush`` maps the RGB colour of each kept brush class to its label;
    ``brush_excluded`` maps the colours of known brush classes that are not kept (left
    out by ``classes=``) to their titles, so their pixels are recognised and counted
    rather than taken for the nearest kept colour.  ``sources`` (with a ``classes=``
    mapping) maps each export title that is kept to the title it becomes; empty, each
    class is its own source.
    """

    titles: tuple[str, ...]
    brush: Mapping[RGB, int]
    brush_excluded: Mapping[RGB, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def lookup(self) -> dict[str, int]:
        """``{export title: label}`` of every kept title (merged sources included)."""
        own = {t: k for k, t in enumerate(self.titles) if k}
        if not self.sources:
            return own
        return {source: own[target] for source, target in self.sources.items()}

    def label_of_titles(self, titles: Sequence[str]) -> npt.NDArray[np.int64]:
        """Label of each export title (``-1`` for titles that are not kept)."""
        lookup = self.lookup()
        return np.array([lookup.get(t, -1) for t in titles], np.int64)


@dataclass(slots=True)
class BrushCounts:
    """What :func:`label_brush` made of one brush PNG's painted pixels, beyond exact
    colours of kept classes.

    ``inexact``: pixels within the tolerance of a colour but not equal to it.
    ``unlisted``: ``{"#rrggbb": pixels}`` of colours within the tolerance of none.
    ``excluded``: ``{title: pixels}`` of known brush classes that are not kept.
    """

    inexact: int = 0
    unlisted: Counter[str] = field(default_factory=Counter)
    excluded: Counter[str] = field(default_factory=Counter)


def label_brush(
    rgba: npt.NDArray[np.uint8], class_map: ClassMap, *, fill: int
) -> tuple[npt.NDArray[np.int64], BrushCounts]:
    """A brush PNG as a label map of ``class_map``'s classes.

    Painted pixels of a kept class's colour (within
    :data:`~ango_torch.targets.brush.BRUSH_TOLERANCE`) take its label; those of an excluded
    class's colour, and unlisted ones (near no known colour), take ``fill``.

    Args:
        rgba: ``uint8 [H, W, 4]`` brush image.
        class_map: the dataset's classes and brush colours.
        fill: the label of excluded and unlisted pixels (0 background, or
            :data:`~ango_torch.targets.arrays.IGNORE`).

    Returns:
        ``(labels, counts)``: ``int64 [H, W]`` (0 where unpainted) and the counts.
    """
    kept = list(class_map.brush.items())
    excluded = list(class_map.brush_excluded.items())
    colors = [c for c, _ in kept] + [c for c, _ in excluded]
    arr = np.asarray(rgba)
    counts = BrushCounts()
    if colors:
        index_map, counts.inexact = brush_to_class_map(arr, colors=colors)
    else:
        distinct_colors(arr, top=0)  # validates the image
        index_map = np.where(arr[..., 3] > 0, UNLISTED, 0).astype(np.int64)
    lookup = np.array([0, *(k for _, k in kept), *[fill] * len(excluded), fill], np.int64)
    labels: npt.NDArray[np.int64] = lookup[index_map]  # UNLISTED (-1) takes the last
    first = len(kept) + 1
    if excluded:
        hits = np.bincount(index_map[index_map >= first] - first, minlength=len(excluded))
        for (_, title), n in zip(excluded, hits.tolist(), strict=True):
            if n:
                counts.excluded[title] += n
    unlisted = index_map == UNLISTED
    if unlisted.any():
        named = distinct_colors(arr[unlisted][None], top=REPORTED_COLORS)  # bounded: noise
        for (r, g, b), n in named:
            counts.unlisted[f"#{r:02x}{g:02x}{b:02x}"] += n
        rest = int(unlisted.sum()) - sum(n for _, n in named)
        if rest:
            counts.unlisted[OTHER_COLORS] += rest
    return labels, counts


def _brush_tables(
    colors: Mapping[str, str], lookup: Mapping[str, int]
) -> tuple[dict[RGB, int], dict[RGB, str]]:
    kept: dict[RGB, int] = {}
    excluded: dict[RGB, str] = {}
    for color, title in colors.items():
        rgb = parse_hex_color(color)
        if title in lookup:
            kept[rgb] = lookup[title]
        else:
            excluded[rgb] = title
    return kept, excluded


def brush_color_source(
    ontology: Ontology | None, brush_colors: Mapping[str, str] | None
) -> Literal["brush_colors", "ontology", "discovered"]:
    """Where a dataset's brush colours come from: ``brush_colors=``, else the ontology
    when it names any, else the colours found in the brush PNGs."""
    if brush_colors is not None:
        return "brush_colors"
    if ontology is not None and ontology.brush_colors():
        return "ontology"
    return "discovered"


def resolve_classes(
    index: ExportIndex,
    *,
    task: str,
    snapshot_rows: npt.NDArray[np.int32],
    ontology: Ontology | None = None,
    classes: ClassSpec | None = None,
    brush_colors: Mapping[str, str] | None = None,
    discovered_brush: Sequence[str] = (),
    brush: bool = True,
) -> ClassMap:
    """The class list of a dataset.

    Order: ``classes`` when given (a mapping: its keys, see :func:`map_classes`); else
    the ontology's order (its tools of the kinds the task uses, and its brush classes),
    followed by brush classes the ontology lacks (``brush_colors`` titles, or
    discovered colours when the ontology names no brush colour); else titles sorted
    alphabetically.  Brush colours come from
    ``brush_colors`` (``{"#rrggbb": title}``, over the ontology's own), else the
    ontology, else ``discovered_brush`` colours (one class per distinct colour, named
    by it).  Colours of brush classes not kept are in :attr:`ClassMap.brush_excluded`.

    Raises:
        OntologyError: ``classes`` names a title the ontology does not have (a mapping:
            a source that is no title, schemaId or brush colour, see
            :func:`map_classes`); or the semantic task would give a class the label
            255, the ignore value.
    """
    kinds = {k.key for k in task_kinds(task)}
    colors: dict[str, str] = {}
    source = brush_color_source(ontology, brush_colors)
    if not brush:
        pass  # the task leaves brush masks out: no brush classes
    elif source == "brush_colors":
        # The ontology's colours stay known (as excluded classes) unless overridden.
        own = ontology.brush_colors() if ontology is not None else {}
        colors = {**own, **{c.lower(): t for c, t in (brush_colors or {}).items()}}
    elif source == "ontology":
        colors = ontology.brush_colors() if ontology is not None else {}
    else:
        colors = {c.lower(): c.lower() for c in discovered_brush}
    sources: dict[str, str] = {}
    if isinstance(classes, Mapping):
        existing = ontology.titles() if ontology is not None else list(index.titles)
        titles, sources = map_classes(
            classes,
            titles=[*existing, *colors.values()],
            schema_ids={
                k: t.title for k, t in (ontology.by_schema_id() if ontology else {}).items()
            },
            colors=colors,
        )
    elif classes is not None:
        if isinstance(classes, str):
            raise TypeError(f"classes must be a list of titles or a mapping, got {classes!r}")
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
        if source == "brush_colors":
            titles += list((brush_colors or {}).values())
        elif source == "discovered":
            titles += sorted(colors.values())
        titles = list(dict.fromkeys(titles))
    else:
        present = _present_titles(index, snapshot_rows, task)
        titles = sorted(set(present) | set(colors.values()))
    if BACKGROUND in titles:
        raise OntologyError(f"{BACKGROUND!r} is reserved for label 0")
    if task == "semantic" and len(titles) >= IGNORE:
        raise OntologyError(
            f"task='semantic' with {len(titles)} classes (besides {BACKGROUND!r}): class "
            f"{titles[IGNORE - 1]!r} would get label {IGNORE}, the ignore value of semantic "
            f"masks; keep at most {IGNORE - 1} classes (classes=[...])"
        )
    class_map = ClassMap((BACKGROUND, *titles), {}, {}, sources)
    kept, excluded = _brush_tables(colors, class_map.lookup())
    return ClassMap(class_map.titles, kept, excluded, sources)


def map_classes(
    classes: Mapping[str, str | Sequence[str]],
    *,
    titles: Sequence[str],
    schema_ids: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Resolve a ``classes=`` mapping that merges and renames classes.

    ``{"vehicle": ["car", "truck"], "person": "pedestrian"}``: each key is a class of the
    dataset, in label order; each source is a title of ``titles``, else a schemaId (of
    ``schema_ids``, standing for its class's title: objects are matched by title), else a
    ``"#rrggbb"`` brush colour (of ``colors``, standing for its brush class's title).
    Titles no key maps are left out (the caller counts what it drops).  Pure: datasets
    of any kind (images, volumes) resolve their ``classes=`` with it.

    Args:
        classes: ``{new title: source or [sources]}``.
        titles: the titles that exist (the ontology's or the export's, and brush classes').
        schema_ids: ``{schemaId: title}`` (the ontology's tools).
        colors: ``{"#rrggbb": title}`` of the brush classes (lower-case colours).

    Returns:
        ``(new titles in label order, {source title: new title})``.

    Raises:
        OntologyError: a source that is no title, schemaId or colour; a title mapped to
            two new titles; a key with no source.
    """
    known = set(titles)
    by_id = dict(schema_ids or {})
    by_color = {c.lower(): t for c, t in (colors or {}).items()}
    sources: dict[str, str] = {}
    for new, given in classes.items():
        if not isinstance(new, str) or not new:
            raise OntologyError(f"classes: a mapping key must be a non-empty title, got {new!r}")
        names = [given] if isinstance(given, str) else list(given)
        if not names:
            raise OntologyError(f"classes[{new!r}] maps no class; give at least one source")
        for name in names:
            if not isinstance(name, str):
                raise OntologyError(f"classes[{new!r}]: a source must be a string, got {name!r}")
            if name in known:
                title = name
            elif name in by_id:
                title = by_id[name]
            elif name.lower() in by_color:
                title = by_color[name.lower()]
            else:
                raise OntologyError(
                    f"classes[{new!r}]: {name!r} is no class title, schemaId or brush colour; "
                    f"titles: {sorted(known)}"
                )
            if sources.get(title, new) != new:
                raise OntologyError(
                    f"classes: {title!r} is mapped to both {sources[title]!r} and {new!r}"
                )
            sources[title] = new
    return list(classes), sources


def _present_titles(
    index: ExportIndex, snapshot_rows: npt.NDArray[np.int32], task: str
) -> list[str]:
    """Titles of the task's kinds in the selected snapshots."""
    in_rows = index.snapshot_objects(snapshot_rows)
    kind_ok = np.isin(index.obj_kind, [int(k) for k in task_kinds(task)])
    used = np.unique(index.obj_title[in_rows & kind_ok])
    return [index.titles[int(t)] for t in used]
