"""API keys and passwords: generation, hashing and constant-time verification."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

KEY_SCHEME = "snt"
_KEY_SHAPE = re.compile(rf"^({KEY_SCHEME}_[0-9a-z]{{8}})_([A-Za-z0-9_-]{{43,}})$")
_PASSWORDS = PasswordHasher()  # argon2id with the library's current recommended parameters


@dataclass(frozen=True, slots=True)
class NewApiKey:
    plaintext: str  # shown once, never stored
    prefix: str  # public and unique: "snt_" + 8 characters; used to find and revoke the key
    key_hash: str  # SHA-256 of the whole key


def hash_api_key(plaintext: str) -> str:
    """SHA-256 hex digest. Keys carry 256 random bits, so no salt or slow hash is needed."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    public = "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(8))
    prefix = f"{KEY_SCHEME}_{public}"
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"  # 32 random bytes -> 43 characters
    return NewApiKey(plaintext=plaintext, prefix=prefix, key_hash=hash_api_key(plaintext))


def split_api_key(plaintext: str) -> str | None:
    """The prefix of a well-formed key, or None for anything else."""
    match = _KEY_SHAPE.match(plaintext)
    return match.group(1) if match else None


def api_key_matches(plaintext: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(plaintext), key_hash)


def hash_password(password: str) -> str:
    return _PASSWORDS.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _PASSWORDS.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so that timing does not reveal it.
DUMMY_PASSWORD_HASH = _PASSWORDS.hash("sentinel-dummy-password")
