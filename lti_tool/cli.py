"""`parcours lti …`: registering platforms and rotating the tool's keys.

Each change writes the audit log ("command line") in its transaction. Bad input (an unknown
organization or platform, a URL that is not https, a duplicate) fails with a one-line message
naming the option at fault and a non-zero status. Running servers see a new or changed platform's
framing origins within `config.security.FRAME_ORIGINS_TTL` seconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import connectors
from config.commands import Runtime, fail, pass_runtime, print_json
from config.db import utcnow
from lti_tool import keys, registration, registry
from lti_tool.admin import (
    KEY_OBJECT_TYPE,
    OBJECT_TYPE,
    deployment_rows,
    last_launches,
    tool_urls,
)
from lti_tool.models import LtiPlatform, LtiToolKey

# The registry's error `code` → the option at fault.
OPTIONS = {
    "issuer": "--issuer",
    "client_id": "--client-id",
    "name": "--name",
    "deployment_id": "--deployment-id",
    "auth_login_url": "--auth-login-url",
    "auth_token_url": "--auth-token-url",
    "key_set_url": "--key-set-url",
    "frame": "--frame-origin",
    "duplicate_deployment": "--deployment-id",
}
TOOL_LABELS = {
    "login_url": "login (OIDC initiation) URL",
    "launch_url": "launch (target link, redirect) URL",
    "jwks_url": "public keys (JWKS) URL",
    "deep_linking_url": "deep linking URL",
}


@click.group()
def lti() -> None:
    """LTI 1.3: platforms (LMS) and the tool's signing keys."""


# -- helpers --------------------------------------------------------------------------------------


def _organization(session: Session, reference: str) -> connectors.Organization:
    organization = connectors.find_organization(session, reference)
    if organization is None:
        fail(f"--org: no organization with id or UAI {reference.strip()!r}")
    if organization.archived_at is not None:
        fail(f"--org: organization {organization.name!r} is archived")
    return organization


def _platform(session: Session, platform_id: int) -> LtiPlatform:
    platform = session.get(LtiPlatform, platform_id)
    if platform is None:
        fail(f"--platform: no LTI platform with id {platform_id}")
    return platform


def _refused(error: connectors.ServiceError) -> NoReturn:
    """The registry's refusal, in one line naming the option."""
    message, option = str(error), OPTIONS.get(error.code)
    if option is None:
        fail(message)
    if error.code == "frame":
        fail(f"{option}: {message.removeprefix('frame origin ')}")
    if message.startswith(error.code):
        fail(option + message.removeprefix(error.code))
    fail(f"{option}: {message}")


def _platform_dict(session: Session, platform: LtiPlatform, public_url: str) -> dict[str, Any]:
    launched = last_launches(session, platform.id).get(platform.id)
    return {
        "id": platform.id,
        "name": platform.name,
        "issuer": platform.issuer,
        "client_id": platform.client_id,
        "active": platform.is_active,
        "auth_login_url": platform.auth_login_url,
        "auth_token_url": platform.auth_token_url,
        "key_set_url": platform.key_set_url,
        "audience": platform.audience,
        "frame_origins": platform.frame_origins.split(),
        "match_learners": platform.match_learners,
        "deployments": [
            {
                "id": deployment.id,
                "deployment_id": deployment.deployment_id,
                "organization": {
                    "id": organization.id,
                    "name": organization.name,
                    "uai": organization.uai,
                },
            }
            for deployment, organization in deployment_rows(session, [platform.id]).get(
                platform.id, []
            )
        ],
        "last_launch_at": launched.isoformat() if launched else None,
        "tool": tool_urls(public_url),
    }


def _echo_platform(result: dict[str, Any], verb: str = "") -> None:
    state = "active" if result["active"] else "pending activation"
    label = result["name"] or result["issuer"]
    click.echo(f"platform {result['id']}{' ' + verb if verb else ''}: {label} ({state})")
    click.echo(f"  issuer        {result['issuer']}")
    click.echo(f"  client id     {result['client_id']}")
    for deployment in result["deployments"]:
        organization = deployment["organization"]
        uai = f" ({organization['uai']})" if organization["uai"] else ""
        click.echo(
            f"  deployment    {deployment['deployment_id']} -> "
            f"organization {organization['id']} {organization['name']}{uai}"
        )


def _echo_tool(urls: dict[str, str]) -> None:
    click.echo("paste into the platform:")
    for key, url in urls.items():
        click.echo(f"  {TOOL_LABELS[key]:<36} {url}")


# -- platforms ------------------------------------------------------------------------------------


@lti.command("add-platform")
@click.option("--org", "org_ref", required=True, help="Organization (id or UAI) it launches into.")
@click.option("--issuer", required=True, help="The platform's issuer (its URL).")
@click.option("--client-id", required=True, help="The client id the platform gave Parcours.")
@click.option("--deployment-id", required=True, help="Its first deployment id.")
@click.option("--auth-login-url", required=True, help="OIDC authentication request URL.")
@click.option("--auth-token-url", required=True, help="OAuth2 access token URL.")
@click.option("--key-set-url", required=True, help="The platform's public keys (JWKS) URL.")
@click.option("--audience", default=None, help="`aud` of our token requests, if not the token URL.")
@click.option("--name", default="", help="A name to tell it by in /admin.")
@click.option(
    "--frame-origin",
    "frame_origins",
    multiple=True,
    help="Another origin that frames Parcours (Canvas: the school's domain). Repeatable.",
)
@click.option(
    "--match-learners",
    is_flag=True,
    help="Its names are reliable (from the school's directory, locked): a learner's first launch"
    " is matched with the school's learner list, one user with their ENT account.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the platform as JSON.")
@pass_runtime
def add_platform(
    runtime: Runtime,
    org_ref: str,
    issuer: str,
    client_id: str,
    deployment_id: str,
    auth_login_url: str,
    auth_token_url: str,
    key_set_url: str,
    audience: str | None,
    name: str,
    frame_origins: tuple[str, ...],
    match_learners: bool,
    as_json: bool,
) -> None:
    """Register a platform (active at once) and its first deployment, mapped to --org; print
    the tool's URLs to paste into the platform."""
    with runtime.connected_database().session() as session, session.begin():
        organization = _organization(session, org_ref)
        try:
            platform = registry.add_platform(
                session,
                organization=organization,
                deployment_id=deployment_id,
                issuer=issuer,
                client_id=client_id,
                auth_login_url=auth_login_url,
                auth_token_url=auth_token_url,
                key_set_url=key_set_url,
                audience=audience,
                name=name,
                frame_origins=" ".join(frame_origins),
                match_learners=match_learners,
            )
        except connectors.ServiceError as error:
            _refused(error)
        connectors.audit_command_line(
            session,
            "lti.platform.create",
            object_type=OBJECT_TYPE,
            object_id=platform.id,
            object_label=platform.label,
            details={
                "issuer": platform.issuer,
                "client_id": platform.client_id,
                "deployment_id": deployment_id.strip(),
                "organization_id": organization.id,
                "organization": organization.name,
            },
        )
        result = _platform_dict(session, platform, runtime.settings.public_url)
    if as_json:
        print_json(result)
        return
    _echo_platform(result, "registered")
    _echo_tool(result["tool"])


@lti.command("add-deployment")
@click.option("--platform", "platform_id", required=True, type=int, help="Platform id.")
@click.option("--deployment-id", required=True, help="The deployment id the platform gave.")
@click.option("--org", "org_ref", required=True, help="Organization (id or UAI) it launches into.")
@click.option("--json", "as_json", is_flag=True, help="Print the platform as JSON.")
@pass_runtime
def add_deployment(
    runtime: Runtime, platform_id: int, deployment_id: str, org_ref: str, as_json: bool
) -> None:
    """Map another deployment of a platform to an organization."""
    with runtime.connected_database().session() as session, session.begin():
        platform = _platform(session, platform_id)
        organization = _organization(session, org_ref)
        try:
            deployment = registry.add_deployment(session, platform, deployment_id, organization)
        except connectors.ServiceError as error:
            _refused(error)
        connectors.audit_command_line(
            session,
            "lti.deployment.create",
            object_type=OBJECT_TYPE,
            object_id=platform.id,
            object_label=platform.label,
            details={
                "deployment_id": deployment.deployment_id,
                "organization_id": organization.id,
                "organization": organization.name,
            },
        )
        result = _platform_dict(session, platform, runtime.settings.public_url)
    if as_json:
        print_json(result)
        return
    _echo_platform(result, "now has deployment " + deployment.deployment_id)


@lti.command("platforms")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@pass_runtime
def platforms(runtime: Runtime, as_json: bool) -> None:
    """The registered platforms, their deployments and last launch."""
    with runtime.connected_database().session() as session:
        rows = [
            _platform_dict(session, platform, runtime.settings.public_url)
            for platform in session.scalars(select(LtiPlatform).order_by(LtiPlatform.id))
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no LTI platform is registered", err=True)
    for row in rows:
        _echo_platform(row)
        click.echo(f"  last launch   {row['last_launch_at'] or 'never'}")


@lti.command("registration-url")
@click.option("--org", "org_ref", required=True, help="Organization (id or UAI) it launches into.")
@click.option("--json", "as_json", is_flag=True, help="Print the URL as JSON.")
@pass_runtime
def registration_url(runtime: Runtime, org_ref: str, as_json: bool) -> None:
    """A dynamic registration URL for --org, to paste into the platform (valid 7 days; the
    platform it registers waits, inactive, until an instance administrator activates it)."""
    settings = runtime.settings
    with runtime.connected_database().session() as session:
        organization = _organization(session, org_ref)
        url = registration.registration_url(settings.public_url, settings.secret_key, organization)
        result = {
            "organization": {"id": organization.id, "name": organization.name},
            "url": url,
            "valid_days": registration.LINK_LIFETIME // 86400,
        }
    if as_json:
        print_json(result)
        return
    click.echo(url)


# -- the tool's keys ------------------------------------------------------------------------------


@lti.group("keys")
def keys_group() -> None:
    """The tool's signing keys (published at /lti/jwks.json)."""


def _key_dict(key: LtiToolKey, now: dt.datetime) -> dict[str, Any]:
    retires_at = key.superseded_at + keys.OVERLAP if key.superseded_at is not None else None
    if retires_at is None:
        status = "signing"
    elif retires_at > now:
        status = "published"
    else:
        status = "retired"
    return {
        "kid": key.kid,
        "status": status,
        "created_at": key.created_at.isoformat(),
        "superseded_at": key.superseded_at.isoformat() if key.superseded_at else None,
        "retires_at": retires_at.isoformat() if retires_at else None,
    }


def _echo_keys(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        until = f" until {row['retires_at']}" if row["status"] == "published" else ""
        click.echo(f"  {row['kid']}  {row['status']}{until}")


@keys_group.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
@pass_runtime
def keys_rotate(runtime: Runtime, as_json: bool) -> None:
    """Add a signing key; the keys it replaces stay published for the overlap (3 days)."""
    with runtime.connected_database().session() as session, session.begin():
        key, replaced = keys.rotate(session)
        connectors.audit_command_line(
            session,
            "lti.keys.rotate",
            object_type=KEY_OBJECT_TYPE,
            object_id=key.id,
            object_label=key.kid,
            details={"kid": key.kid, "superseded": [old.kid for old in replaced]},
        )
        now = utcnow()
        result = {
            "kid": key.kid,
            "published": [_key_dict(published, now) for published in keys.published(session)],
        }
    if as_json:
        print_json(result)
        return
    click.echo(f"new signing key {result['kid']}; published:")
    _echo_keys(result["published"])  # type: ignore[arg-type]


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
@pass_runtime
def keys_list(runtime: Runtime, as_json: bool) -> None:
    """The stored keys, newest first: signing, published (until when) or retired."""
    with runtime.connected_database().session() as session:
        now = utcnow()
        rows = [
            _key_dict(key, now)
            for key in session.scalars(
                select(LtiToolKey).order_by(LtiToolKey.created_at.desc(), LtiToolKey.id.desc())
            )
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no key yet: the first is made when one is needed", err=True)
    _echo_keys(rows)
