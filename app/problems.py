"""RFC 9457 problem+json responses for every error, with no stack trace ever sent."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.errors import (
    AuthenticationError,
    ConflictError,
    FieldError,
    InvalidFieldsError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceError,
)

logger = logging.getLogger("sentinel.errors")

PROBLEM_JSON = "application/problem+json"

# One table: error type -> (status, title).
_STATUS: dict[type[ServiceError], tuple[int, str]] = {
    NotFoundError: (404, "Not Found"),
    ConflictError: (409, "Conflict"),
    AuthenticationError: (401, "Unauthorized"),
    PermissionDeniedError: (403, "Forbidden"),
    PayloadTooLargeError: (413, "Payload Too Large"),
    RateLimitedError: (429, "Too Many Requests"),
    InvalidFieldsError: (422, "Unprocessable Content"),
}


class ProblemField(BaseModel):
    field: str = Field(description="dotted path of the offending input, e.g. substance.smiles")
    reason: str


class Problem(BaseModel):
    """The body of every error response (RFC 9457), as documented in the OpenAPI schema."""

    type: str = Field(description="always about:blank: the status and title say it all")
    title: str
    status: int
    detail: str
    errors: list[ProblemField] | None = Field(
        default=None, description="422 only: one entry per invalid field"
    )


_REASONS = {
    "extra_forbidden": "unknown field",
    "missing": "field required",
}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_path(location: tuple[Any, ...] | list[Any]) -> str:
    """Dotted field path; body fields lose the leading 'body', others keep their location."""
    parts = [str(part) for part in location]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_errors(errors: list[dict[str, Any]] | Any) -> list[FieldError]:
    result: list[FieldError] = []
    for error in errors:
        reason = _REASONS.get(error.get("type", ""), str(error.get("msg", "invalid value")))
        # pydantic prefixes custom validator messages with "Value error, "
        reason = reason.removeprefix("Value error, ")
        result.append(FieldError(field=field_path(error.get("loc", ())), reason=reason))
    return result


def invalid_fields_response(errors: list[FieldError]) -> JSONResponse:
    detail = "; ".join(f"{error.field}: {error.reason}" for error in errors)
    return problem(
        422,
        "Unprocessable Content",
        detail,
        errors=[{"field": error.field, "reason": error.reason} for error in errors],
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at the request's path (for the Allow header of a 405)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_fields_response(validation_errors(exc.errors()))

    @app.exception_handler(ServiceError)
    async def on_service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        status, title = next(
            (value for kind, value in _STATUS.items() if isinstance(exc, kind)),
            (400, "Bad Request"),
        )
        if isinstance(exc, InvalidFieldsError):
            return invalid_fields_response(exc.errors)
        headers: dict[str, str] = {}
        if isinstance(exc, AuthenticationError):
            headers["WWW-Authenticate"] = 'Bearer realm="sentinel-nps"'
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(exc.retry_after)
        return problem(status, title, exc.detail, headers=headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names only the methods of the first route whose path matched.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(exc.status_code, _title(exc.status_code), str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "an unexpected error occurred")
