"""The schema key of a persisted index: which parser and layout wrote it.

Kept apart from :mod:`~ango_torch.export.index` so that the builder and the index both
read it without importing each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["INDEX_VERSION", "SCHEMA", "schema_key"]

INDEX_VERSION = 1

# The modules whose code decides what an index holds: reading, parsing, columns, layout.
_SCHEMA_MODULES = (
    "export/_blocks.py",
    "export/_build.py",
    "export/_bytescan.py",
    "export/_columns.py",
    "export/_fields.py",
    "export/_indexing.py",
    "export/_parse.py",
    "export/_parse_geometry.py",
    "export/_read.py",
    "export/_scan.py",
    "export/_tables.py",
    "export/_typed.py",
    "export/_schema.py",
    "export/_split.py",
    "export/index.py",
    "records.py",
)


def schema_key(package: Path | None = None) -> str:
    """A hash of the sources of the modules that build an index (and the layout version).

    ``package``: the ``ango_torch`` folder to read them from (default: this one).

    A persisted index records the key it was built with; one with another key was
    written by a different parser and is rebuilt, so a fix to the parser reaches
    cached exports without anyone bumping a version by hand.
    """
    folder = Path(__file__).parents[1] if package is None else package
    h = hashlib.blake2b(f"ango-torch index {INDEX_VERSION}".encode(), digest_size=16)
    for name in _SCHEMA_MODULES:
        try:
            h.update((folder / name).read_bytes())
        except OSError:  # installed without sources (bytecode only): its name at least
            h.update(name.encode())
    return h.hexdigest()


SCHEMA = schema_key()
"""The schema key of this version of the package (see :func:`schema_key`)."""
