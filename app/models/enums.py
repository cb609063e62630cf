"""Enumerations stored in the database (by value, as VARCHAR with a CHECK constraint)."""

from enum import StrEnum


class OrganisationKind(StrEnum):
    LAB = "lab"
    AGENCY = "agency"
    MINISTRY = "ministry"


class ApiRole(StrEnum):
    LAB = "lab"
    OFFICER = "officer"
    SUBSCRIBER = "subscriber"
    ADMIN = "admin"


class UserRole(StrEnum):
    OFFICER = "officer"
    ADMIN = "admin"


class InputType(StrEnum):
    SMILES = "smiles"
    INCHI = "inchi"
    NAME = "name"


class SampleType(StrEnum):
    SEIZURE = "seizure"
    TEST_PURCHASE = "test_purchase"
    DRUG_CHECKING = "drug_checking"
    BIOLOGICAL = "biological"
    OTHER = "other"


class DetectionContext(StrEnum):
    DEATH = "death"
    INTOXICATION = "intoxication"
    DRIVING = "driving"
    SEIZURE = "seizure"
    OTHER = "other"


class Technique(StrEnum):
    GC_MS = "GC-MS"
    LC_HRMS = "LC-HRMS"
    LC_MS_MS = "LC-MS/MS"
    NMR = "NMR"
    FTIR = "FTIR"
    RAMAN = "Raman"
    OTHER = "other"


class DetectionStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class SubjectType(StrEnum):
    SUBSTANCE = "substance"
    CLUSTER = "cluster"


class AlertStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    DISMISSED = "dismissed"
    PUBLISHED = "published"
    RESOLVED = "resolved"


class SubscriberKind(StrEnum):
    MINISTRY = "ministry"
    HEALTH = "health"
    LAW_ENFORCEMENT = "law_enforcement"
    OTHER = "other"


class ChannelType(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed under a lease
    DELIVERED = "delivered"
    FAILED = "failed"  # permanently rejected by the receiver (no retry)
    DEAD = "dead"  # retries exhausted: dead letter, shown to admins
