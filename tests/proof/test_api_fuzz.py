"""Schemathesis over the whole OpenAPI document, once with a valid key of each role.

Every default check runs: no server errors, status codes, content types, headers and bodies as
documented, schema-violating input rejected, schema-valid input accepted, and every operation
refusing a missing or invalid key (ignored_auth probes each one without and with a bad key).
Generation is derandomized, so a run is repeatable; examples are few, so the file stays within
a few minutes. A finding is a bug in the app or in its OpenAPI document: fix it there.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.openapi.checks import RejectedPositiveData
from sqlalchemy.orm import Session, sessionmaker

from app.main import create_app
from app.openapi import allowed_roles
from app.settings import Settings
from reference_standards import Library
from tests.conftest import auth
from tests.proof.support import KEY_OF_ROLE, loopback_webhooks, seed

# The document is the same for every app instance; the requests go to the test's own app.
_DOCUMENT_APP = create_app(Settings(database_url="sqlite://"))
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", _DOCUMENT_APP)
REFUSED = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _DOCUMENT_APP,
    config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}}),
)

# Valid input that the schema cannot tell from invalid input: the app answers it with a 422
# naming the field, as documented. Each entry is (field, reason) regular expressions matched
# against the 422's `errors`; a 422 on positive data naming anything else still fails.
BEYOND_SCHEMA = [
    # Whether a string is a structure RDKit can parse is chemistry, not JSON Schema.
    (r"(body|substance|co_detected\.\d+)\.(smiles|inchi)", r".+"),
    # Registries: ISO 3166-1 countries and ISO 3166-2 subdivisions (and which country a
    # subdivision lies in).
    (r"country|filters\.countries(\.\d+)?", r"not an ISO 3166-1 alpha-2 country code"),
    (r"region", r"not an ISO 3166-2 subdivision code|is not in country"),
    # Detection dates must lie between 1990 and today: "today" is not expressible.
    (r"detected_on", r"must not be (before|in the future)"),
    # An email address is checked by a pattern after trimming white space, which JSON Schema
    # regular expressions cannot mirror exactly.
    (r"channels\.\d+(\.email)?\.address", r"not an email address"),
    # Webhook URLs must resolve to public addresses (SSRF guard); the tests resolve nothing.
    (r"channels\.\d+\.url", r"unsafe webhook URL"),
    # Cursors are opaque tokens the API handed out; a made-up one is refused.
    (r"query\.cursor", r"not a cursor from this API"),
    # A key reused for a different request is refused (state, not shape).
    (r"header\.Idempotency-Key", r"was used with a different request"),
    # A dismissal needs a reason; the body depends on the action in the path.
    (r"note", r"a dismissal needs a reason"),
]


def positive_data_acceptance_beyond_schema(ctx: Any, response: Any, case: Any) -> bool | None:
    """The built-in positive_data_acceptance, except for the 422s listed in BEYOND_SCHEMA."""
    try:
        result: bool | None = schemathesis.checks.positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code != 422 or not _beyond_schema(response.json()):
            raise
        return None
    return result


def _beyond_schema(problem: dict[str, Any]) -> bool:
    errors = problem.get("errors") or []
    return bool(errors) and all(
        any(
            re.fullmatch(field, error["field"]) and re.search(reason, error["reason"])
            for field, reason in BEYOND_SCHEMA
        )
        for error in errors
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return loopback_webhooks(settings)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fuzzed webhook URLs name random hosts: resolve none of them, so nothing leaves 127.0.0.1."""

    def refuse(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, f"name resolution disabled in tests: {host}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def world(
    client: TestClient,
    sessions: sessionmaker[Session],
    keys: dict[str, str],
    loaded_references: Library,
) -> None:
    """Objects for the fuzzed ids and lists to find (ids start at 1 again on SQLite)."""
    seed(client, sessions, keys)


# function_scoped_fixture: the app, its database and the keys are deliberately shared by all
# the examples of one operation (state carries over, as it does for a real client).
SETTINGS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


def admits(role: str, ctx: Any) -> bool:
    operation = SCHEMA.raw_schema["paths"][ctx.operation.path][ctx.operation.method.lower()]
    roles = allowed_roles(operation)
    return roles is None or role in roles


def fuzz(role: str, *, admitted: bool) -> Any:
    """A test of every operation the role may (or may not) call, with a valid key of the role.

    Refused operations answer 403 before reading any input, so their coverage phase (dozens
    of boundary cases per operation) would send the same request again and again: they get
    two generated examples each, with every check; which roles get 403 is proven operation by
    operation in test_role_matrix.py.
    """
    schema = (SCHEMA if admitted else REFUSED).include(
        lambda ctx: admits(role, ctx) == admitted, name=None
    )

    @schema.parametrize()
    @hypothesis_settings(max_examples=8 if admitted else 2, **SETTINGS)
    def test(case: Any, app: Any, keys: dict[str, str], world: None, no_dns: None) -> None:
        case.call_and_validate(
            app=app,
            headers=auth(keys[KEY_OF_ROLE[role]]),
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
            additional_checks=[positive_data_acceptance_beyond_schema],
        )

    return test


test_a_lab_key_gets_what_the_schema_promises = fuzz("lab", admitted=True)
test_an_officer_key_gets_what_the_schema_promises = fuzz("officer", admitted=True)
test_a_subscriber_key_gets_what_the_schema_promises = fuzz("subscriber", admitted=True)
test_an_admin_key_gets_what_the_schema_promises = fuzz("admin", admitted=True)
test_a_lab_key_is_refused_as_documented = fuzz("lab", admitted=False)
test_an_officer_key_is_refused_as_documented = fuzz("officer", admitted=False)
test_a_subscriber_key_is_refused_as_documented = fuzz("subscriber", admitted=False)
# An admin key is refused nothing.


def test_the_fuzzed_document_is_the_apps(app: Any) -> None:
    assert app.openapi() == SCHEMA.raw_schema
