"""The tool's signing keys, kept in the database so that every process signs with the same one.

The newest key signs (deep linking responses, OAuth2 client assertions). `rotate` adds a key:
both are published at `/lti/jwks.json` at once, the new one signs from then on, and the old one
stays published for `OVERLAP` (platforms cache our keys, and tokens signed a moment ago must
still verify) before it is retired: unpublished, then deleted by `purge_retired`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto.jwk import JWK
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.db import execute_dml, utcnow
from lti_tool.models import LtiToolKey

KEY_SIZE = 2048
OVERLAP = dt.timedelta(days=3)
ALGORITHM = "RS256"


def _new_key() -> LtiToolKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    kid = secrets.token_urlsafe(16)
    public = JWK.from_pem(pem.encode()).export_public(as_dict=True)
    public.update(kid=kid, alg=ALGORITHM, use="sig")
    return LtiToolKey(kid=kid, private_key_pem=pem, public_jwk=public, created_at=utcnow())


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def signing_key(session: Session) -> LtiToolKey:
    """The key to sign with: the newest, created at first use."""
    key = session.scalars(
        select(LtiToolKey)
        .where(LtiToolKey.superseded_at.is_(None))
        .order_by(LtiToolKey.created_at.desc(), LtiToolKey.id.desc())
        .limit(1)
    ).first()
    if key is not None:
        return key
    try:
        with session.begin_nested():
            key = _new_key()
            session.add(key)
    except IntegrityError:  # pragma: no cover - a random kid twice
        return signing_key(session)
    return key


def rotate(session: Session) -> tuple[LtiToolKey, list[LtiToolKey]]:
    """Add a key that signs from now on; the keys it replaces stay published for `OVERLAP`.
    Returns the new key and the ones it supersedes."""
    now = utcnow()
    replaced = list(session.scalars(select(LtiToolKey).where(LtiToolKey.superseded_at.is_(None))))
    execute_dml(
        session,
        update(LtiToolKey)
        .where(LtiToolKey.superseded_at.is_(None))
        .values(superseded_at=now)
        .execution_options(synchronize_session=False),
    )
    key = _new_key()
    session.add(key)
    session.flush()
    for old in replaced:
        session.refresh(old)
    return key, replaced


def published(session: Session) -> list[LtiToolKey]:
    """The keys `/lti/jwks.json` lists: the signing one and those superseded less than
    `OVERLAP` ago."""
    cutoff = utcnow() - OVERLAP
    keys = list(
        session.scalars(
            select(LtiToolKey)
            .where((LtiToolKey.superseded_at.is_(None)) | (LtiToolKey.superseded_at > cutoff))
            .order_by(LtiToolKey.created_at.desc(), LtiToolKey.id.desc())
        )
    )
    return keys or [signing_key(session)]


def jwks(session: Session) -> dict[str, Any]:
    return {"keys": [dict(key.public_jwk) for key in published(session)]}


def purge_retired(session: Session) -> int:
    """Delete keys superseded for longer than `OVERLAP` (nothing verifies with them any more)."""
    cutoff = utcnow() - OVERLAP
    return execute_dml(
        session, delete(LtiToolKey).where(LtiToolKey.superseded_at < cutoff)
    ).rowcount
