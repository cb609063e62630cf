"""Every table of the service, re-exported so that Alembic and callers see one metadata."""

from app.models.alert import Alert, AlertEvent, ThreatScore
from app.models.detection import Cluster, Detection, IdempotencyRecord, StoredAnalysis
from app.models.organisation import ApiKey, AuditLog, Organisation, User
from app.models.subscriber import Delivery, EmailChannel, Subscriber, WebhookEndpoint
from app.models.substance import Substance, SubstanceName
from app.models.web import WebSession

__all__ = [
    "Alert",
    "AlertEvent",
    "ApiKey",
    "AuditLog",
    "Cluster",
    "Delivery",
    "Detection",
    "EmailChannel",
    "IdempotencyRecord",
    "Organisation",
    "StoredAnalysis",
    "Subscriber",
    "Substance",
    "SubstanceName",
    "ThreatScore",
    "User",
    "WebSession",
    "WebhookEndpoint",
]
