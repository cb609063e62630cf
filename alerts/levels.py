"""Alert levels, ordered, with their CAP 1.2 severities."""

from __future__ import annotations

from enum import StrEnum


class AlertLevel(StrEnum):
    INFO = "info"
    ADVISORY = "advisory"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def cap_severity(self) -> str:
        """CAP 1.2 <severity>: critical Extreme, warning Severe, advisory Moderate, info Minor."""
        return _CAP_SEVERITY[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, AlertLevel):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, AlertLevel):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, AlertLevel):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, AlertLevel):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {AlertLevel.INFO: 0, AlertLevel.ADVISORY: 1, AlertLevel.WARNING: 2, AlertLevel.CRITICAL: 3}
_CAP_SEVERITY = {
    AlertLevel.INFO: "Minor",
    AlertLevel.ADVISORY: "Moderate",
    AlertLevel.WARNING: "Severe",
    AlertLevel.CRITICAL: "Extreme",
}
