"""Structure drawings for the console: RDKit SVGs served as images, cached by InChIKey."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Cluster, Detection, Substance
from chemistry.depiction import svg
from chemistry.errors import InvalidStructureError
from chemistry.structures import parse

INCHIKEY = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")
SIZES = {"thumb": (132, 96), "card": (220, 160), "large": (380, 270)}
MAX_SMARTS = 300
# RDKit's SVG styles every path with a style attribute; this policy lets the drawing (and only
# the drawing: no script, no other source) use them, whether it is shown as an <img> or opened.
DRAWING_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


class DrawingCache:
    """Bounded LRU of SVG drawings keyed on (InChIKey, size, highlight): a structure's drawing
    never changes, and the queue shows the same few hundred again and again."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str, str], value: str) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


CACHE = DrawingCache()


def smiles_for(session: Session, inchikey: str) -> str | None:
    """The structure behind an InChIKey: a reference standard, a cluster's representative or a
    detected structure (in that order)."""
    smiles = session.scalar(select(Substance.smiles).where(Substance.inchikey == inchikey))
    if smiles is None:
        smiles = session.scalar(
            select(Cluster.representative_smiles)
            .where(Cluster.representative_inchikey == inchikey)
            .limit(1)
        )
    if smiles is None:
        smiles = session.scalar(
            select(Detection.smiles)
            .where(Detection.inchikey == inchikey, Detection.smiles.is_not(None))
            .limit(1)
        )
    return smiles


def drawing(
    session: Session, inchikey: str, *, size: str = "card", highlight: str | None = None
) -> str | None:
    """The SVG of a structure, or None when the InChIKey is unknown.

    An invalid highlight SMARTS draws the structure without highlight.
    """
    width, height = SIZES.get(size, SIZES["card"])
    highlight = (highlight or "")[:MAX_SMARTS]
    key = (inchikey, f"{width}x{height}", highlight)
    cached = CACHE.get(key)
    if cached is not None:
        return cached
    smiles = smiles_for(session, inchikey)
    if smiles is None:
        return None
    try:
        mol = parse(smiles)
    except InvalidStructureError:
        return None
    try:
        text = svg(mol, highlight_smarts=highlight or None, width=width, height=height)
    except InvalidStructureError:
        text = svg(mol, width=width, height=height)
    CACHE.put(key, text)
    return text
