"""The audit trail: who did what, when, from where."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from app.deps import Principal
from app.models import AuditLog


def record(
    session: Session,
    principal: Principal | None,
    action: str,
    object_type: str,
    object_id: object | None = None,
    *,
    client_address: str | None = None,
    detail: dict[str, Any] | None = None,
    actor: str = "system",
) -> None:
    """Write an audit row in the caller's transaction (so it commits or rolls back with the
    work). A Core INSERT, not an ORM object: it runs on every write request."""
    session.execute(
        _INSERT,
        {
            "actor": principal.actor if principal else actor,
            "actor_type": principal.actor_type if principal else actor,
            "role": principal.role.value if principal else actor,
            "organisation_id": principal.organisation_id if principal else None,
            "action": action,
            "object_type": object_type,
            "object_id": None if object_id is None else str(object_id),
            "client_address": client_address,
            "detail": detail or {},
        },
    )


# On the table, not the mapped class: a plain Core INSERT, compiled once (the ORM's bulk-insert
# path costs several times more per row).
_INSERT = insert(cast(Table, AuditLog.__table__))
