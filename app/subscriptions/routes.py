"""Subscriber and delivery administration (admins only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app import audit
from app.crypto import SecretBox
from app.deps import AdminDep, ReadSessionDep, SessionDep, client_address
from app.inputs import RowId
from app.models.enums import DeliveryStatus
from app.subscriptions import service
from app.subscriptions.schemas import (
    DeliveryRead,
    ReplaySince,
    SecretRotated,
    SubscriberCreate,
    SubscriberRead,
)

router = APIRouter(prefix="/v1", tags=["subscribers"])


def _box(request: Request) -> SecretBox:
    return SecretBox(request.app.state.settings.secret_key.get_secret_value())


@router.post(
    "/subscribers",
    status_code=201,
    response_model=SubscriberRead,
    responses={409: {"description": "a subscriber of this name exists"}},
)
def create_subscriber(
    body: SubscriberCreate, request: Request, session: SessionDep, admin: AdminDep
) -> dict[str, Any]:
    """Create a subscriber; each webhook channel's signing secret is in this response only."""
    subscriber, secrets = service.create(
        session,
        body,
        box=_box(request),
        allowed_networks=request.app.state.settings.webhook_allowed_networks,
    )
    audit.record(
        session,
        admin,
        "subscriber.create",
        "subscriber",
        subscriber.id,
        client_address=client_address(request),
        detail={"name": subscriber.name},
    )
    return service.view(subscriber, secrets)


@router.get("/subscribers", response_model=list[SubscriberRead])
def list_subscribers(session: ReadSessionDep, admin: AdminDep) -> list[dict[str, Any]]:
    return [service.view(subscriber) for subscriber in service.list_all(session)]


@router.get(
    "/subscribers/{subscriber_id:int}",
    response_model=SubscriberRead,
    responses={404: {"description": "no such subscriber"}},
)
def read_subscriber(
    subscriber_id: RowId, session: ReadSessionDep, admin: AdminDep
) -> dict[str, Any]:
    return service.view(service.get(session, subscriber_id))


@router.post(
    "/webhooks/{endpoint_id:int}/rotate-secret",
    response_model=SecretRotated,
    responses={404: {"description": "no such webhook endpoint"}},
)
def rotate_webhook_secret(
    endpoint_id: RowId, request: Request, session: SessionDep, admin: AdminDep
) -> dict[str, Any]:
    """A new signing secret; the previous one keeps signing for 24 hours."""
    endpoint, secret, until = service.rotate_secret(session, endpoint_id, box=_box(request))
    audit.record(
        session,
        admin,
        "webhook.rotate_secret",
        "webhook_endpoint",
        endpoint.id,
        client_address=client_address(request),
    )
    return {"channel_id": endpoint.id, "secret": secret, "previous_secret_valid_until": until}


@router.post(
    "/webhooks/{endpoint_id:int}/enable",
    status_code=204,
    responses={404: {"description": "no such webhook endpoint"}},
)
def enable_webhook(
    endpoint_id: RowId, request: Request, session: SessionDep, admin: AdminDep
) -> None:
    service.enable_endpoint(session, endpoint_id)
    audit.record(
        session,
        admin,
        "webhook.enable",
        "webhook_endpoint",
        endpoint_id,
        client_address=client_address(request),
    )


@router.get("/deliveries", response_model=list[DeliveryRead])
def list_deliveries(
    session: ReadSessionDep,
    admin: AdminDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Deliveries newest first, with status and attempts (status=dead for dead letters)."""
    return [
        service.delivery_view(d)
        for d in service.list_deliveries(session, status=status, limit=limit)
    ]


@router.post(
    "/deliveries/{delivery_id:int}/replay",
    response_model=list[DeliveryRead],
    responses={404: {"description": "no such delivery"}},
)
def replay_delivery(
    delivery_id: RowId, request: Request, session: SessionDep, admin: AdminDep
) -> list[dict[str, Any]]:
    replayed = service.replay(session, [delivery_id])
    if not replayed:
        from app.errors import NotFoundError

        raise NotFoundError(f"delivery {delivery_id} not found")
    audit.record(
        session,
        admin,
        "delivery.replay",
        "delivery",
        delivery_id,
        client_address=client_address(request),
    )
    return [service.delivery_view(d) for d in replayed]


@router.post("/deliveries/replay", response_model=list[DeliveryRead])
def replay_deliveries(
    body: ReplaySince, request: Request, session: SessionDep, admin: AdminDep
) -> list[dict[str, Any]]:
    """Replay every delivery created since a time (e.g. after a receiver's outage)."""
    replayed = service.replay_since(session, body.since)
    audit.record(
        session,
        admin,
        "delivery.replay_since",
        "delivery",
        None,
        client_address=client_address(request),
        detail={"since": body.since.isoformat(), "count": len(replayed)},
    )
    return [service.delivery_view(d) for d in replayed]
