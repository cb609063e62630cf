"""Encryption of secrets the service must be able to read back (webhook signing secrets).

Fernet (AES-128-CBC + HMAC-SHA256, from the `cryptography` package) with a key derived from
SENTINEL_SECRET_KEY, so that a copy of the database alone does not reveal any secret.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(b"sentinel-nps/webhook-secrets\0" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise ValueError(
                "secret cannot be decrypted: was SENTINEL_SECRET_KEY changed?"
            ) from error
