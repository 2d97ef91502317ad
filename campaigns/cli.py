"""Commands owned by the campaigns package."""

from __future__ import annotations

import click

from campaigns import services
from campaigns.models import OrganizationType
from config.commands import Runtime, pass_runtime, print_json


@click.group()
def org() -> None:
    """Organizations."""


@org.command("create")
@click.option("--name", required=True, help="Organization name.")
@click.option("--uai", default=None, help="School code (7 digits and a letter), SCO only.")
@click.option(
    "--type",
    "type_",
    type=click.Choice([t.value for t in OrganizationType]),
    default=OrganizationType.SCO.value,
    show_default=True,
)
@click.option("--admin-email", required=True, help="E-mail of the organization's first admin.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_runtime
def create(
    runtime: Runtime, name: str, uai: str | None, type_: str, admin_email: str, as_json: bool
) -> None:
    """Create an organization and its admin."""
    with runtime.connected_database().session() as session, session.begin():
        created = services.create_organization(
            session,
            name=name,
            type=OrganizationType(type_),
            uai=uai,
            admin_email=admin_email,
        )
        organization, admin = created.organization, created.admin
        result = {
            "id": organization.id,
            "name": organization.name,
            "type": organization.type.value,
            "uai": organization.uai,
            "created_at": organization.created_at.isoformat(),
            "admin": {
                "id": admin.id,
                "email": admin.email,
                "created": created.admin_created,
                "initial_password": created.initial_password,
            },
        }
    if as_json:
        print_json(result)
        return
    click.echo(f"organization {result['id']} created: {organization.name}")
    if created.initial_password:
        click.echo(f"admin {admin.email} created; initial password: {created.initial_password}")
    else:
        click.echo(f"existing account {admin.email} is now its admin")
