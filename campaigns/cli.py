"""Commands owned by the campaigns package."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.accounts import users
from campaigns.district import services as district
from campaigns.orga import team
from campaigns.shared.content import import_pack
from campaigns.shared.errors import AlreadyExists, InvalidInput
from campaigns.shared.models import Organization, OrganizationType, User
from config.commands import Runtime, pass_runtime, print_json
from config.i18n import messages_outside_requests
from engine.content import check_pack_files, load_pack_files, read_pack_files, style_problems


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
    """Create an organization and invite its first admin by e-mail.

    Nobody gets a role from this command: the owner of --admin-email joins by opening the
    invitation link mailed to them (signing up through it, or signed in with the account of that
    address), which also proves the address. The e-mail leaves with `parcours worker`."""
    with (
        messages_outside_requests(),
        runtime.connected_database().session() as session,
        session.begin(),
    ):
        has_account = _has_account(session, admin_email)
        founded = district.create_organization(
            session,
            name=name,
            type=OrganizationType(type_),
            uai=uai,
            admin_email=admin_email,
            public_url=runtime.settings.public_url,
            actor=district.COMMAND_LINE,
        )
        organization = founded.organization
        invitation = _invitation(founded.invitation, admin_email, has_account)
        result = {
            "id": organization.id,
            "name": organization.name,
            "type": organization.type.value,
            "uai": organization.uai,
            "created_at": organization.created_at.isoformat(),
            "admin": invitation,
        }
    if as_json:
        print_json(result)
        return
    click.echo(f"organization {result['id']} created: {organization.name}")
    click.echo(f"admin invitation e-mailed to {invitation['email']} ({invitation['outcome']})")


@org.command("invite-admin")
@click.option("--org", "org_ref", required=True, help="Organization id or UAI.")
@click.option("--email", required=True, help="E-mail of the admin to invite.")
@click.option("--json", "as_json", is_flag=True, help="Print the invitation as JSON.")
@pass_runtime
def invite_admin(runtime: Runtime, org_ref: str, email: str, as_json: bool) -> None:
    """Invite an admin to an organization by e-mail (or renew a pending invitation: a new link,
    the old one stops working), e.g. when the first admin's invitation expired. As with
    `org create`, nobody gets a role until the owner of the address accepts."""
    with (
        messages_outside_requests(),
        runtime.connected_database().session() as session,
        session.begin(),
    ):
        organization = _organization(session, org_ref)
        has_account = _has_account(session, email)
        invited = district.invite_admin(
            session,
            organization,
            email=email,
            public_url=runtime.settings.public_url,
            actor=district.COMMAND_LINE,
        )
        invitation = _invitation(invited, email, has_account)
        result = {"organization": {"id": organization.id, "uai": organization.uai}, **invitation}
    if as_json:
        print_json(result)
        return
    click.echo(f"admin invitation e-mailed to {invitation['email']} ({invitation['outcome']})")


def _has_account(session: Session, email: str) -> bool:
    return users.find_user_by_login(session, users.normalize_email(email)) is not None


def _invitation(invited: team.Added, email: str, has_account: bool) -> dict[str, object]:
    """What a script needs to know of an ADMIN invitation (never its token)."""
    address = users.normalize_email(email)
    invitation = invited.invitation
    if invitation is None:
        raise AlreadyExists(f"{address} is already a member of this organization")
    return {
        "email": address,
        "account_exists": has_account,
        "outcome": invited.outcome.value,
        "invitation": {
            "id": invitation.id,
            "role": invitation.role.value,
            "status": "pending",
            "expires_at": invitation.expires_at.isoformat(),
        },
    }


def _organization(session: Session, reference: str) -> Organization:
    """An organization named by its id or its UAI (one-line error otherwise)."""
    reference = reference.strip()
    query = select(Organization).where(
        Organization.id == int(reference)
        if reference.isdecimal() and len(reference) < 10
        else Organization.uai == reference.upper()
    )
    organization = session.scalars(query).one_or_none()
    if organization is None:
        raise InvalidInput(f"no organization with id or UAI {reference!r}")
    return organization


@click.group()
def admins() -> None:
    """District (instance) administrators: the only people who reach /admin."""


def _admin_result(user: User, outcome: str) -> dict[str, object]:
    return {"user_id": user.id, "email": user.email, "name": user.full_name, "outcome": outcome}


@admins.command("grant")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_runtime
def admins_grant(runtime: Runtime, email: str, as_json: bool) -> None:
    """Make the account of EMAIL an instance administrator (its address must be confirmed)."""
    with runtime.connected_database().session() as session, session.begin():
        user, granted = district.grant(session, email, actor=district.COMMAND_LINE)
        result = _admin_result(user, "granted" if granted else "already_admin")
    if as_json:
        print_json(result)
        return
    state = "is now" if granted else "already was"
    click.echo(f"{result['email']} {state} an instance administrator")


@admins.command("revoke")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_runtime
def admins_revoke(runtime: Runtime, email: str, as_json: bool) -> None:
    """Take the instance administrator role back from EMAIL (never from the last one)."""
    with runtime.connected_database().session() as session, session.begin():
        user = district.revoke(session, email, actor=district.COMMAND_LINE)
        result = _admin_result(user, "revoked")
    if as_json:
        print_json(result)
        return
    click.echo(f"{result['email']} is no longer an instance administrator")


@admins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@pass_runtime
def admins_list(runtime: Runtime, as_json: bool) -> None:
    """The instance administrators, oldest first."""
    with runtime.connected_database().session() as session:
        rows = [
            {
                "user_id": row.user_id,
                "email": row.email,
                "name": row.name,
                "granted_at": row.granted_at.isoformat(),
            }
            for row in district.instance_admins(session)
        ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['email']}\t{row['name']}\tsince {row['granted_at']}")


@click.group()
def content() -> None:
    """Learning content packs."""


@content.command("check")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def content_check(path: Path, as_json: bool) -> None:
    """Validate a content pack; list every problem (file: item: what is wrong), its house style
    included (typographic apostrophes in French text), which import does not require."""
    files = read_pack_files(path)
    problems = check_pack_files(files) + style_problems(files)
    if as_json:
        print_json({"valid": not problems, "problems": [p.__dict__ for p in problems]})
    else:
        for problem in problems:
            click.echo(str(problem))
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {path}")
    pack = load_pack_files(files)
    if not as_json:
        click.echo(
            f"{pack.id} {pack.version}: {len(pack.competences)} competences, {len(pack.tubes)} tubes, "
            f"{len(pack.skills)} skills, {len(pack.challenges)} challenges, "
            f"{len(pack.target_profiles)} target profiles — valid"
        )


@content.command("import")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--activate", is_flag=True, help="Serve an older, already imported version again.")
@click.option("--json", "as_json", is_flag=True)
@pass_runtime
def content_import(runtime: Runtime, path: Path, activate: bool, as_json: bool) -> None:
    """Import a content pack and make it the active one (idempotent per version)."""
    with runtime.connected_database().session() as session, session.begin():
        imported = import_pack(session, path, activate=activate)
        result = {
            "pack": imported.pack.id,
            "version": imported.pack.version,
            "new_release": imported.created,
            "skills": len(imported.pack.skills),
            "challenges": len(imported.pack.challenges),
            "target_profiles": {
                "created": imported.profiles_created,
                "updated": imported.profiles_updated,
                "archived": imported.profiles_archived,
            },
        }
    if as_json:
        print_json(result)
    else:
        state = "imported" if imported.created else "already imported, active"
        click.echo(
            f"{result['pack']} {result['version']}: {state}; target profiles {result['target_profiles']}"
        )


@click.group()
def learners() -> None:
    """School learner lists."""


@learners.command("import")
@click.option("--org", "org_ref", required=True, help="Organization id or UAI.")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_runtime
def learners_import(runtime: Runtime, org_ref: str, file: Path, as_json: bool) -> None:
    """Import a school's learner list (SIECLE-like CSV: nom, prénom, date de naissance,
    division, INE). All or nothing; learners missing from the file are disabled."""
    from campaigns.orga.learners import import_learners

    data = file.read_bytes()
    with runtime.connected_database().session() as session, session.begin():
        organization = _organization(session, org_ref)
        report = import_learners(session, organization, data)
        result: dict[str, object] = {
            "organization": {"id": organization.id, "uai": organization.uai}
        }
        result.update(report.as_dict())
    if as_json:
        print_json(result)
        return
    click.echo(
        f"{report.created} learner(s) added, {report.updated} updated, "
        f"{report.disabled} disabled, {report.unchanged} unchanged"
    )
