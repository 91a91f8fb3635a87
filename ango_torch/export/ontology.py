"""The project's ontology (``categorySchema``), which fixes class order and brush colours.

Accepted shapes: the bare schema ``{"tools": [...], ...}``, ``{"categorySchema": ...}``
and the project API's ``{"data": {"project": {"categorySchema": ...}}}``; as a dict,
or a path or fsspec URL of a JSON file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import OntologyError

# Brush colours as :func:`ango_torch.targets.brush.parse_hex_color` reads them.
_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")

__all__ = ["Ontology", "OntologyClass", "load_ontology"]


@dataclass(frozen=True, slots=True)
class OntologyClass:
    """One tool class of the ontology."""

    schema_id: str | None
    title: str
    tool: str | None
    color: str | None = None
    medical_brush: bool = False
    """``medical-brush: true``: a voxel-brush class (its voxels are in the task's
    ``.seg.nrrd``, valued by its schemaId)."""


@dataclass(frozen=True, slots=True)
class Ontology:
    """A parsed categorySchema: its tool classes in the project's order."""

    tools: tuple[OntologyClass, ...]
    classifications: tuple[Mapping[str, Any], ...] = ()
    relations: tuple[Mapping[str, Any], ...] = ()

    def titles(self) -> list[str]:
        """Class titles in ontology order, each once."""
        return list(dict.fromkeys(t.title for t in self.tools))

    def brush_colors(self) -> dict[str, str]:
        """``{"#rrggbb": title}`` of the brush classes (lower-case colours)."""
        return {t.color.lower(): t.title for t in self.tools if t.tool == "brush" and t.color}

    def by_schema_id(self) -> dict[str, OntologyClass]:
        """Tool classes keyed by schemaId."""
        return {t.schema_id: t for t in self.tools if t.schema_id}


def _unwrap(raw: Any, name: str) -> Mapping[str, Any]:
    if isinstance(raw, Mapping) and isinstance(raw.get("data"), Mapping):
        project = raw["data"].get("project", raw["data"])
        if isinstance(project, Mapping):
            raw = project
    if isinstance(raw, Mapping) and "categorySchema" in raw:
        raw = raw["categorySchema"]
    if not isinstance(raw, Mapping) or not isinstance(raw.get("tools", []), list):
        raise OntologyError(
            f"ontology {name}: expected a categorySchema with a 'tools' list (bare, under "
            f"'categorySchema', or under data.project.categorySchema), got {type(raw).__name__}"
        )
    return raw


def parse_ontology(raw: Any, *, name: str = "<dict>") -> Ontology:
    """Parse a categorySchema in any of the three accepted wrappers."""
    schema = _unwrap(raw, name)
    tools: list[OntologyClass] = []
    for k, t in enumerate(schema.get("tools") or []):
        if not isinstance(t, Mapping):
            raise OntologyError(
                f"ontology {name}: tools[{k}] is {type(t).__name__}, expected object"
            )
        title = t.get("title")
        if not isinstance(title, str) or not title:
            raise OntologyError(f"ontology {name}: tools[{k}] has no title")
        color = t.get("color")
        tool = t.get("tool")
        if (
            tool == "brush"
            and color not in (None, "")
            and not (isinstance(color, str) and _HEX.fullmatch(color.strip()))
        ):
            # Brush colours map pixels to classes: one that is not hex cannot map any.
            raise OntologyError(
                f"ontology {name}: tools[{k}] (class {title!r}), field 'color': expected a "
                f"brush colour like '#RRGGBB' or '#RGB', got {color!r}"
            )
        medical = t.get("medical-brush") is True
        sid = t.get("schemaId")
        if medical and type(sid) is int:  # voxel values: small integers from 1
            sid = str(sid)
        tools.append(
            OntologyClass(
                schema_id=sid if isinstance(sid, str) else None,
                title=title,
                tool=t.get("tool") if isinstance(t.get("tool"), str) else None,
                color=color if isinstance(color, str) and color else None,
                medical_brush=medical,
            )
        )
    return Ontology(
        tools=tuple(tools),
        classifications=tuple(
            c for c in schema.get("classifications") or [] if isinstance(c, Mapping)
        ),
        relations=tuple(r for r in schema.get("relations") or [] if isinstance(r, Mapping)),
    )


def load_ontology(
    source: Ontology | Mapping[str, Any] | str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
) -> Ontology:
    """Load an ontology from a dict, an :class:`Ontology`, or a JSON path/URL."""
    if isinstance(source, Ontology):
        return source
    if isinstance(source, Mapping):
        return parse_ontology(source)
    if not isinstance(source, (str, os.PathLike)):
        return parse_ontology(source)  # raises OntologyError naming the type
    from ._read import loads, open_export

    name = os.fspath(source)
    f, _ = open_export(name, storage_options)
    with f:
        data = f.read()
    try:
        raw = loads(data)
    except ValueError as exc:
        raise OntologyError(f"ontology {name!r}: invalid JSON ({exc})") from exc
    return parse_ontology(raw, name=repr(name))
