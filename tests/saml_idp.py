"""A fake SAML identity provider for the tests: throwaway key and certificate, its metadata, and
responses minted the way an IdP does (the assertion signed, then wrapped in the response, by
the test IdP's `mint_response`), with knobs to break each check the service provider must make.
An independent implementation (pysaml2) checks the same path in `test_saml_interop`."""

from __future__ import annotations

import base64
import datetime as dt
import threading
import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from sso import devidp

_lock = threading.Lock()
_made: dict[str, tuple[str, str]] = {}


def key_and_certificate(seed: str) -> tuple[str, str]:
    """A throwaway RSA key and self-signed certificate per name, made once (PEM)."""
    with _lock:
        if seed not in _made:
            _made[seed] = devidp.new_key_and_certificate(seed)
        return _made[seed]


def student(**changes: list[str]) -> dict[str, list[str]]:
    """GAR attributes of a student of the test school."""
    return {
        "IDO": ["gar-ido-7f3a9c"],
        "UAI": ["0750999Z"],
        "PRO": ["National_elv"],
        "PRE": ["Léa"],
        "NOM": ["Martin"],
        "DIV": ["2NDB##2nde B"],
        **changes,
    }


def teacher(**changes: list[str]) -> dict[str, list[str]]:
    return {
        "IDO": ["gar-ido-prof-42"],
        "UAI": ["0750999Z"],
        "PRO": ["National_ens"],
        "PRE": ["Claire"],
        "NOM": ["Durand"],
        "P_MEL": ["claire.durand@ac-paris.fr"],
        **changes,
    }


@dataclass
class FakeIdp:
    entity_id: str = "https://idp.gar.example/idp"
    sso_url: str = "https://idp.gar.example/sso"
    key_name: str = "gar-idp"
    extra_certificates: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return key_and_certificate(self.key_name)[0]

    @property
    def certificate(self) -> str:
        return key_and_certificate(self.key_name)[1]

    def metadata(self, *, valid_until: dt.datetime | None = None, certificates=None) -> bytes:
        document = devidp.metadata(
            self.entity_id,
            self.sso_url,
            certificates if certificates is not None else [self.certificate],
        )
        if valid_until is None:
            return document
        until = f' validUntil="{valid_until.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"'
        return document.replace(b" entityID=", until.encode() + b" entityID=", 1)

    @staticmethod
    def request_of(redirect_url: str) -> tuple[str, str, dict[str, list[str]]]:
        """The id and ACS URL of the AuthnRequest in our login redirect, and its query."""
        query = parse_qs(urlsplit(redirect_url).query)
        xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
        request_id = xml.split(' ID="', 1)[1].split('"', 1)[0]
        acs = xml.split('AssertionConsumerServiceURL="', 1)[1].split('"', 1)[0]
        return request_id, acs, query

    def response(self, *, key_name: str | None = None, **fields) -> str:
        """A base64 SAMLResponse, the assertion signed (by `key_name`'s key when given); the
        fields break one check at a time (see `devidp.mint_response`)."""
        key, certificate = key_and_certificate(key_name or self.key_name)
        return devidp.mint_response(
            issuer=self.entity_id, private_pem=key, certificate_pem=certificate, **fields
        )
