"""Personal data at rest: encryption, a blind index for look-ups, and masking.

Reporter names and phone numbers are encrypted with a key that lives outside the database
(``YIHAO_DATA_KEY`` or the secrets file in ``YIHAO_HOME``), so a copied database or backup
reveals nothing. A keyed hash of the normalised phone lets staff find "all tickets from this
caller" without decrypting every row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import String, TypeDecorator

_fernet: Fernet | None = None
_index_key: bytes = b""


def configure(data_key: str) -> None:
    """Install the data key (a Fernet key, urlsafe base64 of 32 bytes)."""
    global _fernet, _index_key
    _fernet = Fernet(data_key.encode() if isinstance(data_key, str) else data_key)
    _index_key = hashlib.sha256(b"yihao-blind-index:" + base64.urlsafe_b64decode(data_key)).digest()


def new_data_key() -> str:
    return Fernet.generate_key().decode()


def _cipher() -> Fernet:
    if _fernet is None:
        raise RuntimeError("personal-data key not configured (server.core.crypto.configure)")
    return _fernet


def encrypt(value: str) -> str:
    return _cipher().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:  # wrong key: fail loudly, never show ciphertext as data
        raise RuntimeError("personal data cannot be decrypted with the configured key") from exc


def normalise_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def blind_index(phone: str) -> str:
    """A keyed hash of the phone number: equal numbers match, the number cannot be read back."""
    return hmac.new(_index_key, normalise_phone(phone).encode(), hashlib.sha256).hexdigest()[:32]


class Encrypted(TypeDecorator[str]):
    """A string column stored encrypted; Python code sees plain text."""

    impl = String(512)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else encrypt(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else decrypt(value)


def mask_name(name: str | None) -> str | None:
    """张三丰 → 张**; keeps the family name that staff use to address the caller."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str | None:
    """13812345678 → 138****5678; landlines keep their last four digits."""
    if not phone:
        return phone
    digits = normalise_phone(phone)
    if len(digits) >= 11:
        return digits[:3] + "****" + digits[-4:]
    if len(digits) > 4:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "****"
