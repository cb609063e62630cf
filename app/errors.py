"""Service-level errors; app/problems.py maps each to an HTTP status in one table."""

from __future__ import annotations

from dataclasses import dataclass


class ServiceError(Exception):
    """Base class for errors a service raises to its caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ServiceError):
    pass


class ConflictError(ServiceError):
    pass


class AuthenticationError(ServiceError):
    pass


class PermissionDeniedError(ServiceError):
    pass


class PayloadTooLargeError(ServiceError):
    pass


class RateLimitedError(ServiceError):
    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # dotted path in the request body, e.g. "substance.smiles"
    reason: str


class InvalidFieldsError(ServiceError):
    """Input that passed the schema but failed a domain check (structure, country, ...)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{error.field}: {error.reason}" for error in errors))
        self.errors = errors
