"""Console administration (admins only): labs and keys, users, subscribers, deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.orm import Session

from alerts.levels import AlertLevel
from app import audit
from app.crypto import SecretBox
from app.db import utc_now
from app.deps import ReadSessionDep, SessionDep, client_address
from app.errors import ServiceError
from app.models.enums import (
    ApiRole,
    DeliveryStatus,
    OrganisationKind,
    SubscriberKind,
    UserRole,
)
from app.subscriptions import service as subscriptions
from app.subscriptions.schemas import SubscriberCreate
from app.web import accounts
from app.web.auth import AdminUser, CheckedAdmin, ConsoleUser
from app.web.deliveries import deliveries, status_counts
from app.web.templating import render

router = APIRouter(prefix="/console/admin", include_in_schema=False)

DONE = {
    "organisation": "Organisation created.",
    "revoked": "API key revoked: it no longer authenticates.",
    "user": "User created.",
    "activated": "User activated.",
    "deactivated": "User deactivated and signed out everywhere.",
    "unlocked": "User unlocked.",
    "enabled": "Webhook endpoint enabled.",
    "replayed": "Delivery queued to be sent again.",
    "replayed_dead": "Dead letters queued to be sent again.",
}
Text = Annotated[str, Form(max_length=2000)]


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _audit(
    session: Session,
    request: Request,
    user: ConsoleUser,
    action: str,
    object_type: str,
    object_id: object,
    **detail: Any,
) -> None:
    audit.record(
        session,
        user.principal,
        action,
        object_type,
        object_id,
        client_address=client_address(request),
        detail=detail,
    )


def _back(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"/console/admin/{path}?done={done}", status_code=303)


@router.get("")
@router.get("/")
def admin_home(user: AdminUser) -> RedirectResponse:
    return RedirectResponse("/console/admin/labs", status_code=303)


# ---- labs and keys ------------------------------------------------------------------------


def _labs_page(
    request: Request, session: Session, user: ConsoleUser, status: int = 200, **extra: Any
) -> Response:
    context = {
        "section": "labs",
        "organisations": accounts.organisations(session),
        "kinds": [k.value for k in OrganisationKind],
        "roles": [r.value for r in ApiRole],
        "done": _done(request),
        **extra,
    }
    return render(request, "admin_labs.html", context, user=user, status=status)


@router.get("/labs")
def labs(request: Request, session: ReadSessionDep, user: AdminUser) -> Response:
    return _labs_page(request, session, user)


@router.post("/organisations")
def create_organisation(
    request: Request,
    session: SessionDep,
    user: CheckedAdmin,
    name: Text = "",
    kind: Annotated[OrganisationKind, Form()] = OrganisationKind.LAB,
    country: Annotated[str, Form(max_length=2)] = "",
) -> Response:
    try:
        organisation = accounts.create_organisation(session, name, kind, country)
    except ServiceError as error:
        return _labs_page(request, session, user, 422, error=error.detail)
    _audit(session, request, user, "organisation.create", "organisation", organisation.id,
           name=organisation.name, kind=kind.value)  # fmt: skip
    return _back("labs", "organisation")


@router.post("/keys")
def create_key(
    request: Request,
    session: SessionDep,
    user: CheckedAdmin,
    organisation_id: Annotated[int, Form()],
    role: Annotated[ApiRole, Form()],
    label: Text = "",
) -> Response:
    try:
        key, new = accounts.create_key(session, organisation_id, role, label)
    except ServiceError as error:
        return _labs_page(request, session, user, 422, error=error.detail)
    _audit(session, request, user, "api_key.create", "api_key", key.prefix, role=role.value,
           organisation_id=organisation_id)  # fmt: skip
    return _labs_page(request, session, user, 201, new_key=new.plaintext, new_prefix=key.prefix)


@router.post("/keys/{key_id}/revoke")
def revoke_key(key_id: int, request: Request, session: SessionDep, user: CheckedAdmin) -> Response:
    try:
        key = accounts.revoke_key(session, key_id)
    except ServiceError as error:
        return _labs_page(request, session, user, 404, error=error.detail)
    _audit(session, request, user, "api_key.revoke", "api_key", key.prefix)
    # This process refuses the key as soon as the revocation is committed (others within
    # SENTINEL_API_KEY_CACHE_SECONDS).
    forget = request.app.state.key_cache.forget
    event.listen(session, "after_commit", lambda _session: forget(key.prefix), once=True)
    return _back("labs", "revoked")


# ---- users --------------------------------------------------------------------------------


def _users_page(
    request: Request, session: Session, user: ConsoleUser, status: int = 200, **extra: Any
) -> Response:
    context = {
        "section": "users",
        "users": accounts.users(session),
        "organisations": accounts.organisations(session),
        "roles": [r.value for r in UserRole],
        "now_utc": utc_now(),
        "done": _done(request),
        **extra,
    }
    return render(request, "admin_users.html", context, user=user, status=status)


@router.get("/users")
def users(request: Request, session: ReadSessionDep, user: AdminUser) -> Response:
    return _users_page(request, session, user)


@router.post("/users")
def create_user(
    request: Request,
    session: SessionDep,
    user: CheckedAdmin,
    email: Text = "",
    role: Annotated[UserRole, Form()] = UserRole.OFFICER,
    password: Annotated[str, Form(max_length=1024)] = "",
    organisation_id: Annotated[str, Form()] = "",
) -> Response:
    try:
        created = accounts.create_user(
            session, email, role, password, int(organisation_id) if organisation_id else None
        )
    except ServiceError as error:
        return _users_page(request, session, user, 422, error=error.detail)
    _audit(session, request, user, "user.create", "user", created.id, email=created.email,
           role=role.value)  # fmt: skip
    return _back("users", "user")


@router.post("/users/{user_id}/{change}")
def change_user(
    user_id: int, change: str, request: Request, session: SessionDep, user: CheckedAdmin
) -> Response:
    try:
        if change in ("activate", "deactivate"):
            accounts.set_active(
                session, user_id, change == "activate", acting_user_id=user.principal.user_id
            )
        elif change == "unlock":
            accounts.unlock(session, user_id)
        else:
            return _users_page(request, session, user, 404, error=f"unknown change {change!r}")
    except ServiceError as error:
        return _users_page(request, session, user, 409, error=error.detail)
    _audit(session, request, user, f"user.{change}", "user", user_id)
    return _back(
        "users", {"activate": "activated", "deactivate": "deactivated"}.get(change, "unlocked")
    )


# ---- subscribers and channels -------------------------------------------------------------


def _subscribers_page(
    request: Request, session: Session, user: ConsoleUser, status: int = 200, **extra: Any
) -> Response:
    context = {
        "section": "subscribers",
        "subscribers": subscriptions.list_all(session),
        "kinds": [k.value for k in SubscriberKind],
        "levels": [level.value for level in sorted(AlertLevel)],
        "done": _done(request),
        **extra,
    }
    return render(request, "admin_subscribers.html", context, user=user, status=status)


@router.get("/subscribers")
def subscribers(request: Request, session: ReadSessionDep, user: AdminUser) -> Response:
    return _subscribers_page(request, session, user)


@router.post("/subscribers")
def create_subscriber(
    request: Request,
    session: SessionDep,
    user: CheckedAdmin,
    name: Text = "",
    kind: Text = "",
    min_level: Text = "warning",
    countries: Text = "",
    email: Text = "",
    webhook: Text = "",
) -> Response:
    channels = [{"type": "email", "address": email.strip()}] if email.strip() else []
    channels += [{"type": "webhook", "url": webhook.strip()}] if webhook.strip() else []
    codes = [c.strip() for c in countries.replace(";", ",").split(",") if c.strip()]
    try:
        body = SubscriberCreate.model_validate(
            {
                "name": name.strip(),
                "kind": kind,
                "channels": channels,
                "filters": {"countries": codes, "min_level": min_level},
            }
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        return _subscribers_page(request, session, user, 422, error=problems)
    settings = request.app.state.settings
    try:
        subscriber, secrets = subscriptions.create(
            session,
            body,
            box=SecretBox(settings.secret_key.get_secret_value()),
            allowed_networks=settings.webhook_allowed_networks,
        )
    except ServiceError as error:
        return _subscribers_page(request, session, user, 422, error=error.detail)
    _audit(session, request, user, "subscriber.create", "subscriber", subscriber.id,
           name=subscriber.name)  # fmt: skip
    return _subscribers_page(request, session, user, 201, created=subscriber.name, secrets=secrets)


@router.post("/webhooks/{endpoint_id}/enable")
def enable_webhook(
    endpoint_id: int, request: Request, session: SessionDep, user: CheckedAdmin
) -> Response:
    try:
        subscriptions.enable_endpoint(session, endpoint_id)
    except ServiceError as error:
        return _subscribers_page(request, session, user, 404, error=error.detail)
    _audit(session, request, user, "webhook.enable", "webhook_endpoint", endpoint_id)
    return _back("subscribers", "enabled")


# ---- deliveries ---------------------------------------------------------------------------


@router.get("/deliveries")
def delivery_list(
    request: Request, session: ReadSessionDep, user: AdminUser, status: str = ""
) -> Response:
    selected = DeliveryStatus(status) if status in {s.value for s in DeliveryStatus} else None
    return render(
        request,
        "admin_deliveries.html",
        {
            "section": "deliveries",
            "rows": deliveries(session, status=selected, limit=300),
            "counts": status_counts(session),
            "selected": selected.value if selected else "",
            "done": _done(request),
        },
        user=user,
    )


@router.post("/deliveries/{delivery_id}/replay")
def replay_delivery(
    delivery_id: int, request: Request, session: SessionDep, user: CheckedAdmin
) -> Response:
    replayed = subscriptions.replay(session, [delivery_id])
    if replayed:
        _audit(session, request, user, "delivery.replay", "delivery", delivery_id)
    return _back("deliveries", "replayed")


@router.post("/deliveries/replay-dead")
def replay_dead(request: Request, session: SessionDep, user: CheckedAdmin) -> Response:
    dead = [row.delivery.id for row in deliveries(session, status=DeliveryStatus.DEAD, limit=1000)]
    replayed = subscriptions.replay(session, dead)
    _audit(session, request, user, "delivery.replay_dead", "delivery", None, count=len(replayed))
    return _back("deliveries", "replayed_dead")
