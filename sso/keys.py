"""Our service-provider key and certificate, kept in the database so that every process signs
AuthnRequests with the same one and every IdP's metadata shows the same certificates.

A rollover has three phases, because some identity providers (the GAR among them) take our
metadata by hand: `rotate` adds a key that is only *published* (listed in our metadata beside
the signing one) for `PUBLISH_AHEAD`; then it signs, and the old one stays listed for `OVERLAP`
before `purge_retired` deletes it. One rollover at a time; `rotate(now=True)` switches at once
(a compromised key). The first key is made when the first identity provider is registered (or
at first use): two processes doing so at the same moment make two keys, and both then sign
with the newer one, which the metadata lists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from campaigns.connectors import InvalidInput
from config.db import execute_dml, utcnow
from sso.models import SamlSpKey

KEY_SIZE = 2048
CERTIFICATE_LIFETIME = dt.timedelta(days=3650)  # SAML ignores certificate dates; GAR asks ≥ 1 year
PUBLISH_AHEAD = dt.timedelta(days=7)  # a new key is listed that long before it signs
OVERLAP = dt.timedelta(days=7)  # an old key stays listed that long after it stopped signing


def _new_key(common_name: str, created_at: dt.datetime) -> SamlSpKey:
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
        created_at=created_at,
    )


@dataclass(frozen=True)
class KeyRing:
    signing: SamlSpKey
    also_listed: SamlSpKey | None  # the next key (published ahead) or the previous one
    retired: list[SamlSpKey]  # listed no more


def _all(session: Session) -> list[SamlSpKey]:
    return list(session.scalars(select(SamlSpKey).order_by(SamlSpKey.created_at, SamlSpKey.id)))


def key_ring(session: Session, common_name: str) -> KeyRing:
    """The key that signs now, the one listed beside it, and those to delete."""
    found = _all(session)
    if not found:
        key = _new_key(common_name, utcnow() - PUBLISH_AHEAD)  # the first signs at once
        session.add(key)
        session.flush()
        found = [key]
    now = utcnow()
    ready = [k for k in found if k.created_at <= now - PUBLISH_AHEAD]
    signing = ready[-1] if ready else found[0]
    position = found.index(signing)
    older, newer = found[:position], found[position + 1 :]
    also: SamlSpKey | None = newer[0] if newer else None
    retired = older + newer[1:]
    if also is None and older and signing.created_at + PUBLISH_AHEAD + OVERLAP > now:
        also = older[-1]  # stopped signing less than OVERLAP ago: still listed
        retired.remove(also)
    return KeyRing(signing, also, retired)


def rotate(session: Session, common_name: str, *, now: bool = False) -> SamlSpKey:
    """Add the next key: published at once, signing after `PUBLISH_AHEAD` (at once with
    `now`, for a compromised key). Refused while a rollover is under way."""
    ring = key_ring(session, common_name)
    if ring.also_listed is not None and not now:
        raise InvalidInput(
            "a key rollover is under way: the next key signs, or the old one leaves the "
            "metadata, within a week (--now forces a new key at once)",
            code="rotation",
        )
    moment = utcnow() - PUBLISH_AHEAD if now else utcnow()
    key = _new_key(common_name, moment)
    session.add(key)
    session.flush()
    return key


def purge_retired(session: Session) -> int:
    """Delete keys that neither sign nor are listed any more."""
    ring = key_ring(session, "Parcours")
    ids = [key.id for key in ring.retired]
    if not ids:
        return 0
    return execute_dml(session, delete(SamlSpKey).where(SamlSpKey.id.in_(ids))).rowcount


def certificate_body(pem: str) -> str:
    """The base64 of a PEM certificate, as SAML metadata carries it."""
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)
