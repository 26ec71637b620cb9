"""API keys: random, shown once, stored as sha256, compared in constant time, mapped to tenants."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import ApiKey
from app.errors import InvalidInput, Unauthorized

PREFIX = "unl_"
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(sessions: sessionmaker[Session], tenant: str) -> str:
    """A new key for `tenant`; the only time the key itself exists outside the client."""
    if not TENANT.match(tenant):
        raise InvalidInput("tenant must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit")
    key = PREFIX + secrets.token_urlsafe(32)
    with sessions() as s, s.begin():
        s.add(ApiKey(tenant=tenant, key_hash=digest(key), prefix=key[:10]))
    return key


def tenant_for(sessions: sessionmaker[Session], key: str) -> str:
    """The tenant of `key`, or Unauthorized."""
    return lookup(sessions, key).tenant


def lookup(sessions: sessionmaker[Session], key: str) -> ApiKey:
    """The key's record, or Unauthorized. The lookup is by hash; the final check is constant-time."""
    wanted = digest(key)
    with sessions() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.key_hash == wanted, ApiKey.revoked_at.is_(None))).first()
    if row is None or not hmac.compare_digest(row.key_hash, wanted):
        raise Unauthorized("the API key is not valid")
    return row
