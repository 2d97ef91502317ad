"""`parcours saml …`: registering identity providers, refreshing their metadata, rotating our key.

Each change writes the audit log ("command line") in its transaction. Bad input (an unreadable
or expired metadata document, an unknown organization, a slug taken) fails with a one-line
message naming the option at fault and a non-zero status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import requests
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import connectors
from config.commands import Runtime, fail, pass_runtime, print_json
from sso import keys, registry, saml
from sso.models import AttributeMapping, SamlIdentityProvider

OBJECT_TYPE = "saml_idp"
KEY_OBJECT_TYPE = "saml_sp_key"
ACTION_LABELS = {
    "saml.idp.create": _l("Fournisseur d’identité enregistré"),
    "saml.idp.update": _l("Fournisseur d’identité modifié"),
    "saml.idp.activate": _l("Fournisseur d’identité activé"),
    "saml.idp.deactivate": _l("Fournisseur d’identité désactivé"),
    "saml.idp.refresh": _l("Métadonnées d’un fournisseur d’identité relues"),
    "saml.user.export": _l("Données d’une personne exportées"),
    "saml.user.erase": _l("Compte d’une personne effacé"),
    "saml.keys.rotate": _l("Clé SAML renouvelée"),
}
OBJECT_LABELS = {
    OBJECT_TYPE: _l("Fournisseur d’identité"),
    KEY_OBJECT_TYPE: _l("Clé SAML"),
}
OPTIONS = {
    "slug": "--slug",
    "metadata": "--metadata-file/--metadata-url",
    "metadata_url": "--metadata-url",
}


@click.group()
def saml_group() -> None:
    """SAML 2.0 and GAR: identity providers and our service-provider key."""


def _organization(session: Session, reference: str) -> connectors.Organization:
    organization = connectors.find_organization(session, reference)
    if organization is None:
        fail(f"--org: no organization with id or UAI {reference.strip()!r}")
    if organization.archived_at is not None:
        fail(f"--org: organization {organization.name!r} is archived")
    return organization


def idp_dict(session: Session, idp: SamlIdentityProvider, public_url: str) -> dict[str, Any]:
    base = saml.sp_base(public_url, idp)
    organizations = [
        session.get(connectors.Organization, organization_id)
        for organization_id in sorted(registry.organization_ids(session, idp))
    ]
    return {
        "id": idp.id,
        "slug": idp.slug,
        "name": idp.name,
        "entity_id": idp.entity_id,
        "sso_url": idp.sso_url,
        "mapping": idp.mapping.value,
        "allow_idp_initiated": idp.allow_idp_initiated,
        "is_active": idp.is_active,
        "certificates": len(idp.certificates),
        "metadata_url": idp.metadata_url,
        "metadata_valid_until": (
            idp.metadata_valid_until.isoformat() if idp.metadata_valid_until else None
        ),
        "metadata_error": idp.metadata_error,
        "organizations": [
            {"id": o.id, "name": o.name, "uai": o.uai} for o in organizations if o is not None
        ],
        "sp": {
            "entity_id": f"{base}/metadata.xml",
            "metadata_url": f"{base}/metadata.xml",
            "acs_url": f"{base}/acs",
            "login_url": f"{base}/login",
        },
    }


@saml_group.command("add-idp")
@click.option("--slug", required=True, help="Its name in our URLs: /sso/saml/<slug>/…")
@click.option(
    "--metadata-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The IdP's metadata document.",
)
@click.option("--metadata-url", help="Where the IdP's metadata is fetched (and refreshed) from.")
@click.option(
    "--org",
    "org_refs",
    multiple=True,
    help="An organization (id or UAI) it may sign users into. Repeatable.",
)
@click.option(
    "--mapping",
    type=click.Choice([m.value for m in AttributeMapping]),
    default=AttributeMapping.GAR.value,
    show_default=True,
    help="How attributes are read: GAR short names, or standard (eduPerson) names.",
)
@click.option("--name", default="", help="A name to tell it by in /admin.")
@click.option(
    "--allow-idp-initiated",
    is_flag=True,
    help="Accept responses Parcours did not ask for (off by default).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the identity provider as JSON.")
@pass_runtime
def add_idp(
    runtime: Runtime,
    slug: str,
    metadata_file: Path | None,
    metadata_url: str | None,
    org_refs: tuple[str, ...],
    mapping: str,
    name: str,
    allow_idp_initiated: bool,
    as_json: bool,
) -> None:
    """Register an identity provider from its metadata (a file or a URL) and print the values
    its administrator needs (our metadata URL, entity id, ACS)."""
    if (metadata_file is None) == (metadata_url is None):
        fail("--metadata-file or --metadata-url: give exactly one")
    with runtime.connected_database().session() as session, session.begin():
        organizations = [_organization(session, ref) for ref in org_refs]
        try:
            if metadata_file is not None:
                document = metadata_file.read_bytes()[: registry.METADATA_MAX_BYTES + 1]
            else:
                assert metadata_url is not None  # noqa: S101 - checked above
                document = registry.fetch_metadata(requests.Session(), metadata_url)
            idp = registry.add_idp(
                session,
                slug=slug,
                metadata=document,
                metadata_url=metadata_url,
                name=name,
                mapping=AttributeMapping(mapping),
                organizations=organizations,
                allow_idp_initiated=allow_idp_initiated,
            )
        except connectors.ServiceError as error:
            option = OPTIONS.get(error.code)
            message = str(error)
            fail(f"{option}: {message}" if option and not message.startswith("--") else message)
        connectors.audit_command_line(
            session,
            "saml.idp.create",
            object_type=OBJECT_TYPE,
            object_id=idp.id,
            object_label=idp.name,
            details={
                "slug": idp.slug,
                "entity_id": idp.entity_id,
                "mapping": idp.mapping.value,
                "organizations": [o.id for o in organizations],
            },
        )
        result = idp_dict(session, idp, runtime.settings.public_url)
    if as_json:
        print_json(result)
        return
    click.echo(f"identity provider {result['slug']!r} registered (id {result['id']})")
    click.echo("give its administrator:")
    for label, key in (("metadata / entity id", "metadata_url"), ("ACS", "acs_url")):
        click.echo(f"  {label:<22} {result['sp'][key]}")


@saml_group.command("idps")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_idps(runtime: Runtime, as_json: bool) -> None:
    """The identity providers, with their organizations and metadata state."""
    with runtime.connected_database().session() as session:
        found = session.scalars(select(SamlIdentityProvider).order_by(SamlIdentityProvider.slug))
        result = [idp_dict(session, idp, runtime.settings.public_url) for idp in found]
    if as_json:
        print_json(result)
        return
    for item in result:
        state = "active" if item["is_active"] else "inactive"
        click.echo(f"{item['slug']:<20} {item['entity_id']}  ({state}, {item['mapping']})")


@saml_group.command("refresh-metadata")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def refresh_metadata(runtime: Runtime, as_json: bool) -> None:
    """Fetch again the metadata of every IdP registered from a URL (a bad document is refused
    and the last good copy kept); the worker does it every few hours."""
    results = []
    with runtime.connected_database().session() as session, session.begin():
        http = requests.Session()
        for idp in session.scalars(
            select(SamlIdentityProvider).where(SamlIdentityProvider.metadata_url.is_not(None))
        ):
            replaced = registry.refresh_metadata(session, idp, http)
            results.append({"slug": idp.slug, "refreshed": replaced, "error": idp.metadata_error})
    if as_json:
        print_json(results)
        return
    for item in results:
        click.echo(f"{item['slug']:<20} {'refreshed' if item['refreshed'] else item['error']}")


@saml_group.command("rotate-key")
@click.option(
    "--now",
    "at_once",
    is_flag=True,
    help="Sign with the new key at once (a compromised key): IdPs that did not read our "
    "metadata again refuse logins until they do.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def rotate_key(runtime: Runtime, at_once: bool, as_json: bool) -> None:
    """Add our next service-provider key: listed in our metadata at once, signing a week later
    (identity providers that take our metadata by hand have that week), the old one listed a
    week more."""
    from urllib.parse import urlsplit

    with runtime.connected_database().session() as session, session.begin():
        try:
            key = keys.rotate(
                session, urlsplit(runtime.settings.public_url).hostname or "parcours", now=at_once
            )
        except connectors.InvalidInput as refused:
            fail(str(refused))
        connectors.audit_command_line(
            session,
            "saml.keys.rotate",
            object_type=KEY_OBJECT_TYPE,
            object_id=key.id,
            object_label=f"clé {key.id}",
            details={"now": at_once},
        )
        signs_from = key.created_at + keys.PUBLISH_AHEAD
        result = {"id": key.id, "signs_from": signs_from.isoformat()}
    if as_json:
        print_json(result)
        return
    click.echo(f"new SAML key {result['id']}: listed now, signs from {result['signs_from']}")
