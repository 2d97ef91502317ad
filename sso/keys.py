"""Our service-provider key and certificate, kept in the database so that every process signs
AuthnRequests with the same one and every IdP's metadata shows the same certificate.

The newest key signs. `rotate` adds one: from then on the metadata lists both certificates (an
identity provider that reads our metadata again trusts the new one before it is used alone)
and the new key signs; the old one stays listed for `OVERLAP`, then `purge_retired` deletes it.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from config.db import execute_dml, utcnow
from sso.models import SamlSpKey

KEY_SIZE = 2048
CERTIFICATE_LIFETIME = dt.timedelta(days=3650)  # SAML ignores certificate dates; GAR asks ≥ 1 year
OVERLAP = dt.timedelta(days=7)


def _new_key(common_name: str) -> SamlSpKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    now = utcnow()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "Parcours")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CERTIFICATE_LIFETIME)
        .sign(private, hashes.SHA256())
    )
    return SamlSpKey(
        private_key_pem=private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        created_at=now,
    )


def signing_key(session: Session, common_name: str) -> SamlSpKey:
    """The key to sign with: the newest, created at first use."""
    key = session.scalars(
        select(SamlSpKey)
        .where(SamlSpKey.superseded_at.is_(None))
        .order_by(SamlSpKey.created_at.desc(), SamlSpKey.id.desc())
        .limit(1)
    ).first()
    if key is None:
        key = _new_key(common_name)
        session.add(key)
        session.flush()
    return key


def rotate(session: Session, common_name: str) -> SamlSpKey:
    """A new key that signs from now on; the ones it replaces stay listed for `OVERLAP`."""
    execute_dml(
        session,
        update(SamlSpKey)
        .where(SamlSpKey.superseded_at.is_(None))
        .values(superseded_at=utcnow())
        .execution_options(synchronize_session=False),
    )
    key = _new_key(common_name)
    session.add(key)
    session.flush()
    return key


def previous_keys(session: Session) -> list[SamlSpKey]:
    """Superseded keys still listed in the metadata (less than `OVERLAP` ago)."""
    cutoff = utcnow() - OVERLAP
    return list(
        session.scalars(
            select(SamlSpKey)
            .where(SamlSpKey.superseded_at > cutoff)
            .order_by(SamlSpKey.superseded_at.desc())
        )
    )


def purge_retired(session: Session) -> int:
    cutoff = utcnow() - OVERLAP
    return execute_dml(session, delete(SamlSpKey).where(SamlSpKey.superseded_at < cutoff)).rowcount


def certificate_body(pem: str) -> str:
    """The base64 of a PEM certificate, as SAML metadata carries it."""
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)
