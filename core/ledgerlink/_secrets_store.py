"""Tenant secrets at rest: encrypted with Fernet keys (the ``cryptography`` library).

The keys come from ``LEDGERLINK_SECRET_KEYS`` (comma-separated) or the file named by
``LEDGERLINK_SECRET_KEYS_FILE`` (one key a line); the first key encrypts, every key
decrypts (``MultiFernet``). Rotation: put a new key first, keep the old ones after
it, restart ``ledgerlink serve`` (it re-encrypts every stored secret with the first
key at start-up, or on ``POST /v1/admin/rotate-secrets``), then drop the old keys.
A key is made with ``ledgerlink serve --new-secret-key``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._errors import ConfigError

KEYS_ENV = "LEDGERLINK_SECRET_KEYS"
KEYS_FILE_ENV = "LEDGERLINK_SECRET_KEYS_FILE"


def new_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def _key_texts() -> list[str]:
    value = os.environ.get(KEYS_ENV, "").strip()
    if value:
        return [k.strip() for k in value.split(",") if k.strip()]
    path = os.environ.get(KEYS_FILE_ENV, "").strip()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{KEYS_FILE_ENV}: cannot read {path} ({exc.strerror})") from None
        return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return []


class SecretBox:
    """Encrypts and decrypts tenant secrets; never logs or shows them."""

    def __init__(self, keys: list[str] | None = None) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        texts = keys if keys is not None else _key_texts()
        if not texts:
            raise ConfigError(f"the service stores tenant secrets encrypted: set {KEYS_ENV} (or {KEYS_FILE_ENV}) to a "
                              "key made by `ledgerlink serve --new-secret-key`")
        fernets = []
        for index, text in enumerate(texts):
            try:
                fernets.append(Fernet(text.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise ConfigError(f"{KEYS_ENV}: key {index + 1} is not a Fernet key (32 url-safe base64-encoded "
                                  "bytes); make one with `ledgerlink serve --new-secret-key`") from None
        self._box: Any = MultiFernet(fernets)

    def encrypt(self, value: str) -> str:
        return str(self._box.encrypt(value.encode("utf-8")).decode("ascii"))

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return str(self._box.decrypt(token.encode("ascii")).decode("utf-8"))
        except InvalidToken:
            raise ConfigError(f"a stored secret cannot be decrypted with the keys in {KEYS_ENV}: was a key removed "
                              "before the secrets were rotated to the new one?") from None

    def rotate(self, token: str) -> str:
        """The same secret, encrypted with the first key."""
        return str(self._box.rotate(token.encode("ascii")).decode("ascii"))


__all__ = ["KEYS_ENV", "KEYS_FILE_ENV", "SecretBox", "new_key"]
