"""Analyse functions for chemistry workers that misbehave on purpose (imported by the workers of
app.chemistry_pool.ChemistryPool, by name): the proof that isolation contains what it claims."""

from __future__ import annotations

import ctypes
import os

from app.chemistry_pool import analyse_guarded
from chemistry import structures
from chemistry.analysis import Analyser, Analysis

HANG = "C(C)hang"
SEGFAULT = "C(C)segfault"
ABORT = "C(C)abort"
ALLOCATE = "C(C)allocate"


def analyse_or_misbehave(analyser: Analyser, text: str, fmt: str) -> Analysis:
    """As the service does, except that inputs starting with a magic word above misbehave, and
    the ring limit is lifted, so that real RDKit hangs (GRAPHENE_OXIDE_FLAKE) get through."""
    structures.MAX_RINGS = 1_000_000
    if text.startswith(HANG):
        while True:  # a loop that never returns, as RDKit's can
            pass
    if text.startswith(SEGFAULT):
        ctypes.string_at(0)  # a real SIGSEGV: reads address 0
    if text.startswith(ABORT):
        os.abort()  # SIGABRT, as a failed C++ assertion gives
    if text.startswith(ALLOCATE):
        hog = bytearray(8 << 30)  # more than the address-space limit allows
        del hog
    return analyse_guarded(analyser, text, fmt)
