"""What admins manage from the console: organisations, API keys and console users."""

from __future__ import annotations

import re

import pycountry
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.db import utc_now
from app.errors import ConflictError, FieldError, InvalidFieldsError, NotFoundError
from app.models import ApiKey, Organisation, User
from app.models.enums import ApiRole, OrganisationKind, UserRole
from app.security import NewApiKey, generate_api_key, hash_password
from app.web.auth import end_sessions_of

MIN_PASSWORD = 12  # as `sentinel users create`
_EMAIL = re.compile(
    r"^[^@\s<>\"',;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)


def organisations(session: Session) -> list[Organisation]:
    """Labs first (they hold most keys), then agencies and ministries, each by name."""
    rows = session.scalars(select(Organisation).options(selectinload(Organisation.api_keys)))
    return sorted(rows, key=lambda o: (o.kind is not OrganisationKind.LAB, o.name.lower()))


def create_organisation(
    session: Session, name: str, kind: OrganisationKind, country: str
) -> Organisation:
    name = name.strip()
    if not name:
        raise InvalidFieldsError([FieldError("name", "a name is required")])
    code = country.strip().upper() or None
    if code is not None and (len(code) != 2 or pycountry.countries.get(alpha_2=code) is None):
        raise InvalidFieldsError([FieldError("country", f"{country!r} is not an ISO code")])
    if session.scalar(select(Organisation.id).where(Organisation.name == name)) is not None:
        raise ConflictError(f"organisation {name!r} already exists")
    organisation = Organisation(name=name, kind=kind, country=code)
    session.add(organisation)
    session.flush()
    return organisation


def create_key(
    session: Session, organisation_id: int, role: ApiRole, label: str
) -> tuple[ApiKey, NewApiKey]:
    """A new API key; the plaintext is returned once and never stored."""
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFoundError(f"organisation {organisation_id} not found")
    if role is ApiRole.LAB and organisation.kind is not OrganisationKind.LAB:
        raise InvalidFieldsError(
            [FieldError("role", f"{organisation.name} is not a lab: lab keys are for labs")]
        )
    new = generate_api_key()
    key = ApiKey(
        prefix=new.prefix,
        key_hash=new.key_hash,
        role=role,
        organisation_id=organisation.id,
        label=label.strip()[:200],
    )
    session.add(key)
    session.flush()
    return key, new


def revoke_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"API key {key_id} not found")
    if key.revoked_at is None:
        key.revoked_at = utc_now()
        session.flush()
    return key


def users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.role, User.email)))


def create_user(
    session: Session, email: str, role: UserRole, password: str, organisation_id: int | None
) -> User:
    email = email.strip().lower()
    errors = []
    if not _EMAIL.match(email):
        errors.append(FieldError("email", "not an email address"))
    if len(password) < MIN_PASSWORD:
        errors.append(FieldError("password", f"at least {MIN_PASSWORD} characters"))
    if errors:
        raise InvalidFieldsError(errors)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ConflictError(f"user {email} already exists")
    if organisation_id is not None and session.get(Organisation, organisation_id) is None:
        raise NotFoundError(f"organisation {organisation_id} not found")
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=role,
        organisation_id=organisation_id,
    )
    session.add(user)
    session.flush()
    return user


def set_active(session: Session, user_id: int, active: bool, *, acting_user_id: int | None) -> User:
    """Activate or deactivate a user; deactivation ends the user's console sessions."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    if not active and user.id == acting_user_id:
        raise ConflictError("you cannot deactivate your own account")
    user.active = active
    if not active:
        end_sessions_of(session, user.id, now=utc_now())
    session.flush()
    return user


def unlock(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    user.locked_until = None
    user.failed_logins = 0
    session.flush()
    return user
