"""Errors raised by the chemistry package."""


class ChemistryError(ValueError):
    """Base class for every error the chemistry package raises on bad input."""


class InvalidStructureError(ChemistryError):
    """A structure string that cannot be turned into a molecule, with the reason why."""

    def __init__(self, text: str, *, reason: str) -> None:
        self.text = text
        self.reason = reason
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"invalid structure {shown!r}: {reason}")


class SpecMismatchError(ChemistryError):
    """Fingerprints made with one FingerprintSpec offered to code expecting another."""

    def __init__(self, expected: str, found: str) -> None:
        self.expected = expected
        self.found = found
        super().__init__(f"fingerprint spec {found!r} does not match {expected!r}: rebuild")
