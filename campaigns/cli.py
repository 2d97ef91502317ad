"""Commands owned by the campaigns package."""

from __future__ import annotations

from pathlib import Path

import click

from campaigns import services
from campaigns.content import import_pack
from campaigns.models import OrganizationType
from config.commands import Runtime, pass_runtime, print_json
from engine.content import check_pack_files, load_pack_files, read_pack_files


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


@click.group()
def content() -> None:
    """Learning content packs."""


@content.command("check")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def content_check(path: Path, as_json: bool) -> None:
    """Validate a content pack; list every problem (file: item: what is wrong)."""
    files = read_pack_files(path)
    problems = check_pack_files(files)
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
    from sqlalchemy import select

    from campaigns.learners import import_learners
    from campaigns.models import Organization

    data = file.read_bytes()
    with runtime.connected_database().session() as session, session.begin():
        reference = org_ref.strip()
        query = select(Organization).where(
            Organization.id == int(reference)
            if reference.isdecimal() and len(reference) < 10
            else Organization.uai == reference.upper()
        )
        organization = session.scalars(query).one_or_none()
        if organization is None:
            raise services.InvalidInput(f"no organization with id or UAI {reference!r}")
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
