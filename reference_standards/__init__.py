"""The reference substance library: text data files reviewed like code, and their loader."""

from reference_standards.library import (
    DATA_DIR,
    Library,
    Problem,
    ReferenceRecord,
    load_library,
    normalise_name,
)

__all__ = [
    "DATA_DIR",
    "Library",
    "Problem",
    "ReferenceRecord",
    "load_library",
    "normalise_name",
]
