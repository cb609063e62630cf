"""The OpenAPI document: every error response an operation can give, as problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.problems import PROBLEM_JSON, Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    400: "the body is not valid JSON",
    401: "missing, malformed, unknown or revoked API key",
    403: "the key's role may not do this",
    404: "not found",
    409: "conflicts with the current state",
    413: "request body too large",
    422: "invalid input: `errors` names each field and the reason",
    429: "rate limit of this API key exceeded",
    503: "not ready",
}


def install(app: FastAPI) -> None:
    """Complete the generated document with the errors each operation can give.

    The errors raised by shared machinery are derived from what FastAPI generated, so a new
    route is documented correctly by construction: 401 and 429 wherever an API key is required
    (the operation has a security requirement), 403 wherever only some roles are admitted (the
    requirement lists them, app/deps.py `require`), 422 wherever there is input, and 400
    (unparsable) and 413 (too large, app/middleware.py) wherever there is a body. Errors that
    depend on what the route does (404, 409) are declared on the route with `responses=`; here
    they get the Problem schema.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(generate())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def document_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            _document_operation(operation)
    # FastAPI's own 422 shapes are replaced by Problem everywhere.
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def allowed_roles(operation: dict[str, Any]) -> set[str] | None:
    """The roles an operation admits, read from its security requirement (None: no key needed)."""
    requirements: list[dict[str, list[str]]] = operation.get("security", [])
    if not requirements:
        return None
    return {
        role for requirement in requirements for roles in requirement.values() for role in roles
    }


def _document_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    derived: dict[int, str] = {}
    roles = allowed_roles(operation)
    if roles is not None:
        derived[401] = _DESCRIPTIONS[401]
        derived[429] = _DESCRIPTIONS[429]
    if roles:
        derived[403] = f"{_DESCRIPTIONS[403]} (allowed roles: {', '.join(sorted(roles))})"
    if "requestBody" in operation:
        derived[400] = _DESCRIPTIONS[400]
        derived[413] = _DESCRIPTIONS[413]
    if operation.get("parameters") or "requestBody" in operation:
        derived[422] = _DESCRIPTIONS[422]
    for code, description in derived.items():
        responses.setdefault(str(code), {"description": description})
    for key, response in responses.items():
        if key.isdigit() and int(key) >= 400:
            _as_problem(int(key), response)


def _as_problem(status: int, response: dict[str, Any]) -> None:
    if status == 422 or "content" not in response:
        response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
    if status == 422 or not response.get("description"):
        response["description"] = _DESCRIPTIONS.get(status, "error")
    headers = response.setdefault("headers", {})
    if status == 401:
        headers["WWW-Authenticate"] = {
            "description": 'Bearer realm="sentinel-nps"',
            "required": True,
            "schema": {"type": "string"},
        }
    if status == 429:
        headers["Retry-After"] = {
            "description": "seconds until the key may try again",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    if not headers:
        del response["headers"]
