"""The organization's team ("Équipe"): members, roles, invitations by e-mail.

Every member sees the team; only admins add, invite, change roles and remove (a member may
leave). Removing or leaving is asked first on a page of its own (`confirm_remove`, GET), whose
form posts to `remove`. Members and invitations are looked up within the current organization:
another organization's ids get a 404. The invitation link (`/invitation/<token>`) is for people
who may have no account yet, so it is not `@member_required`; guessing tokens is rate limited.
"""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from campaigns.accounts import users
from campaigns.accounts.auth import current_user, sign_in
from campaigns.accounts.messages import weak_password
from campaigns.orga import team
from campaigns.orga.access import admin_required, current_workspace, member_required
from campaigns.shared import organizations
from campaigns.shared.errors import AlreadyExists, InvalidInput, ServiceError
from campaigns.shared.models import (
    NAME_MAX_LENGTH,
    Invitation,
    Membership,
    MembershipRole,
    Organization,
    User,
)
from config.db import get_session, utcnow
from config.numbers import parse_int
from config.ratelimit import Limit, hit, release
from config.settings import Settings

blueprint = Blueprint("orga_team", __name__, template_folder="templates")

# Unknown tokens only: a valid link gives its attempt back, so a school behind one address
# accepting many invitations is never held up.
TOKEN_GUESSES = Limit("invitation-token:address", max_hits=20, window=dt.timedelta(minutes=10))

ROLE_LABELS = {MembershipRole.ADMIN: _l("Administrateur"), MembershipRole.MEMBER: _l("Membre")}
UNUSABLE = {
    "unknown": (
        404,
        _l(
            "Ce lien d’invitation n’est pas valide. Si vous avez reçu plusieurs invitations, "
            "utilisez le lien du message le plus récent."
        ),
    ),
    "expired": (
        410,
        _l(
            "Cette invitation a expiré. Demandez à un administrateur de l’organisation de vous "
            "inviter à nouveau."
        ),
    ),
    "cancelled": (410, _l("Cette invitation a été annulée par l’organisation.")),
    "accepted": (410, _l("Cette invitation a déjà été utilisée.")),
}
LAST_ADMIN = _l(
    "Une organisation garde toujours au moins un administrateur : "
    "nommez d’abord un autre administrateur."
)


def _settings() -> Settings:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings


def _role(raw: str | None) -> MembershipRole | None:
    try:
        return MembershipRole(raw or "")
    except ValueError:
        return None


@blueprint.app_template_filter("member_role")
def _role_label(role: MembershipRole) -> str:
    return str(ROLE_LABELS[role])


# -- the team page --------------------------------------------------------------------------------


def _page(
    status: int = 200, *, form: dict[str, str] | None = None, errors: dict[str, str] | None = None
) -> tuple[str, int]:
    ws = current_workspace()
    db = get_session()
    number = parse_int(request.args.get("page"), 1, high=99_999)
    settings = _settings()
    return render_template(
        "orga/team/index.html",
        section="equipe",
        members=team.members(db, ws.organization, page=number),
        invitations=team.pending_invitations(db, ws.organization) if ws.is_admin else [],
        form=form or {"email": "", "role": MembershipRole.MEMBER.value},
        errors=errors or {},
        roles=list(MembershipRole),
        mail_missing=not settings.mail_configured,
        production=settings.is_production,
        now=utcnow(),
    ), status


@blueprint.get("/orga/equipe", endpoint="index")
@member_required
def index() -> tuple[str, int]:
    return _page()


@blueprint.post("/orga/equipe", endpoint="add")
@admin_required
def add() -> Response | tuple[str, int]:
    ws = current_workspace()
    form = {
        "email": request.form.get("email", "").strip()[:320],
        "role": request.form.get("role", ""),
    }
    errors: dict[str, str] = {}
    role = _role(form["role"])
    if role is None:
        errors["role"] = _("Choisissez un rôle.")
    address = ""
    try:
        address = users.normalize_email(form["email"])
    except InvalidInput:
        errors["email"] = _("Saisissez une adresse e-mail valide, par exemple nom@exemple.fr.")
    if errors or role is None:
        return _page(400, form=form, errors=errors)
    db = get_session()
    added = team.add_member(
        db,
        ws.organization,
        email=address,
        role=role,
        invited_by=ws.user,
        public_url=_settings().public_url,
    )
    db.commit()
    if added.outcome is team.Outcome.ALREADY_MEMBER and added.user is not None:
        flash(_("%(name)s est déjà membre de l’organisation.", name=added.user.full_name), "info")
    elif added.outcome is team.Outcome.RENEWED:
        flash(
            _(
                "Une nouvelle invitation a été envoyée à %(email)s ; le lien précédent ne "
                "fonctionne plus.",
                email=address,
            ),
            "info",
        )
    else:
        flash(_("Une invitation a été envoyée à %(email)s.", email=address), "info")
    return redirect(url_for("orga_team.index"), 303)


# -- roles and removal ----------------------------------------------------------------------------


@blueprint.post("/orga/equipe/membres/<int:membership_id>/role", endpoint="change_role")
@admin_required
def change_role(membership_id: int) -> Response | tuple[str, int]:
    ws = current_workspace()
    db = get_session()
    if team.membership_in(db, ws.organization, membership_id) is None:
        abort(404)
    role = _role(request.form.get("role"))
    if role is None:
        abort(400)
    try:
        membership = team.change_role(db, ws.organization, membership_id, role)
    except team.LastAdmin:
        db.rollback()
        flash(str(LAST_ADMIN), "error")
        return _page(409)
    except users.EmailNotProven:
        db.rollback()
        flash(
            _(
                "Ce membre n’a pas encore confirmé son adresse e-mail : il ne peut pas devenir "
                "administrateur avant de l’avoir fait."
            ),
            "error",
        )
        return _page(409)
    except ServiceError:
        db.rollback()
        abort(404)
    user = db.get(User, membership.user_id)
    db.commit()
    flash(
        _(
            "%(name)s est maintenant %(role)s.",
            name=user.full_name if user else "",
            role=str(ROLE_LABELS[role]).lower(),
        ),
        "info",
    )
    return redirect(url_for("orga_team.index"), 303)


def _removable(membership_id: int) -> tuple[Membership, str, bool]:
    """The membership of the current organization to remove (404 otherwise), the person's name,
    and whether they are leaving themselves; only admins remove someone else (403)."""
    ws = current_workspace()
    db = get_session()
    membership = team.membership_in(db, ws.organization, membership_id)
    if membership is None:
        abort(404)
    leaving = membership.user_id == ws.user.id
    if not (ws.is_admin or leaving):
        abort(
            make_response(
                render_template(
                    "orga/forbidden.html",
                    message=_("Seuls les administrateurs de l’organisation peuvent faire cela."),
                ),
                403,
            )
        )
    user = db.get(User, membership.user_id)
    return membership, user.full_name if user else "", leaving


@blueprint.get("/orga/equipe/membres/<int:membership_id>/retirer", endpoint="confirm_remove")
@member_required
def confirm_remove(membership_id: int) -> tuple[str, int]:
    """The question asked before `remove`: a page (no script, fine in an LMS iframe) whose form
    posts to `remove`. The last admin is told at once why it cannot be done."""
    ws = current_workspace()
    membership, name, leaving = _removable(membership_id)
    last_admin = team.is_last_admin(get_session(), ws.organization, membership)
    return render_template(
        "orga/team/remove.html",
        section="equipe",
        membership=membership,
        name=name,
        leaving=leaving,
        refusal=LAST_ADMIN if last_admin else None,
    ), 409 if last_admin else 200


@blueprint.post("/orga/equipe/membres/<int:membership_id>/retirer", endpoint="remove")
@member_required
def remove(membership_id: int) -> Response | tuple[str, int]:
    ws = current_workspace()
    db = get_session()
    _membership, name, leaving = _removable(membership_id)
    try:
        team.remove_member(db, ws.organization, membership_id)
    except team.LastAdmin:
        db.rollback()
        flash(str(LAST_ADMIN), "error")
        return _page(409)
    except ServiceError:
        db.rollback()
        abort(404)
    db.commit()
    if not leaving:
        flash(_("%(name)s a été retiré de l’équipe.", name=name), "info")
        return redirect(url_for("orga_team.index"), 303)
    flash(
        _("Vous avez quitté l’organisation %(organization)s.", organization=ws.organization.name),
        "info",
    )
    session.pop("organization_id", None)
    g.pop("orga_workspace", None)
    if organizations.organizations_of(db, ws.user):
        return redirect(url_for("orga.home"), 303)
    return redirect(url_for("core.home"), 303)


@blueprint.post(
    "/orga/equipe/invitations/<int:invitation_id>/annuler", endpoint="cancel_invitation"
)
@admin_required
def cancel_invitation(invitation_id: int) -> Response:
    ws = current_workspace()
    db = get_session()
    invitation = team.pending_invitation_in(db, ws.organization, invitation_id)
    if invitation is None:
        abort(404)
    team.cancel_invitation(db, invitation)
    email = invitation.email
    db.commit()
    flash(_("L’invitation de %(email)s est annulée.", email=email), "info")
    return redirect(url_for("orga_team.index"), 303)


# -- the link in the e-mail -----------------------------------------------------------------------


def _unusable(code: str) -> tuple[str, int]:
    status, message = UNUSABLE.get(code, UNUSABLE["unknown"])
    get_session().rollback()
    return render_template("orga/team/invalid.html", message=message, status=status), status


def _accept_page(
    invitation: Invitation,
    organization: Organization,
    token: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    return render_template(
        "orga/team/accept.html",
        invitation=invitation,
        organization=organization,
        token=token,
        user=current_user(),
        form=form or {"first_name": "", "last_name": ""},
        errors=errors or {},
    ), status


def _joined(organization: Organization) -> Response:
    session["organization_id"] = organization.id
    g.pop("orga_workspace", None)
    flash(_("Bienvenue dans l’organisation %(name)s.", name=organization.name), "info")
    return redirect(url_for("orga.home"), 303)


@blueprint.route("/invitation/<token>", methods=["GET", "POST"], endpoint="accept")
def accept(token: str) -> str | Response | tuple[str, int]:
    db = get_session()
    secret: str = current_app.config["SECRET_KEY"]
    address = request.remote_addr or "unknown"
    # Counted (and committed) before the lookup, so parallel guesses see each other.
    verdict = hit(db, TOKEN_GUESSES, address, secret=secret)
    db.commit()
    if not verdict.allowed:
        return render_template(
            "orga/team/invalid.html",
            message=_("Trop de liens d’invitation essayés. Réessayez dans quelques minutes."),
            status=429,
        ), 429
    invitation = team.invitation_by_token(db, token)
    if invitation is None:
        return _unusable("unknown")
    release(db, TOKEN_GUESSES, address, secret=secret)
    db.commit()
    user = current_user()
    organization = db.get(Organization, invitation.organization_id)
    reason = team.unusable_reason(invitation)
    if reason == "accepted" and user is not None and invitation.accepted_by_id == user.id:
        return redirect(url_for("orga.home"), 303)  # a second click on "Rejoindre"
    if organization is None or organization.archived_at is not None:
        reason = "cancelled"
    if reason is not None or organization is None:
        return _unusable(reason or "unknown")
    if request.method == "GET":
        return _accept_page(invitation, organization, token)

    if user is not None and (user.email or "") != invitation.email:
        # The link is a bearer token: it must not let another account in (with an admin role).
        message = _(
            "Cette invitation a été envoyée à %(email)s. Connectez-vous avec ce compte pour la "
            "rejoindre.",
            email=invitation.email,
        )
        db.rollback()
        return render_template("orga/team/invalid.html", message=message, status=403), 403
    new_account = user is None
    if user is None:
        created = _sign_up(invitation, organization, token)
        if not isinstance(created, User):
            return created
        user = created
    try:
        team.accept_invitation(db, token, user)
    except team.InvitationUnusable as error:  # used or cancelled meanwhile
        db.rollback()
        if error.code == "accepted" and not new_account:
            db.refresh(invitation)
            if invitation.accepted_by_id == user.id:
                return redirect(url_for("orga.home"), 303)
        return _unusable(error.code)
    except ServiceError:
        return _unusable("unknown")
    if new_account:
        sign_in(user)
    db.commit()
    return _joined(organization)


def _sign_up(
    invitation: Invitation, organization: Organization, token: str
) -> User | tuple[str, int]:
    """The account of an invitee who has none: the e-mail is the invited address."""
    form = {k: request.form.get(k, "").strip()[:320] for k in ("first_name", "last_name")}
    password = request.form.get("password", "")[:1024]
    errors: dict[str, str] = {}
    for key in ("first_name", "last_name"):
        if len(form[key]) > NAME_MAX_LENGTH:
            errors[key] = _("255 caractères au plus.")
    if not form["first_name"]:
        errors["first_name"] = _("Votre prénom est obligatoire.")
    if not form["last_name"]:
        errors["last_name"] = _("Votre nom est obligatoire.")
    if weak := weak_password(password):
        errors["password"] = weak
    db = get_session()
    if not errors:
        try:
            return users.create_user(
                db,
                first_name=form["first_name"],
                last_name=form["last_name"],
                email=invitation.email,
                password=password,
            )
        except AlreadyExists:
            errors["email"] = _(
                "Un compte utilise déjà cette adresse e-mail : connectez-vous pour rejoindre "
                "l’organisation."
            )
        except InvalidInput:
            errors["email"] = _("Cette adresse e-mail ne permet pas de créer un compte.")
    db.rollback()
    return _accept_page(invitation, organization, token, form=form, errors=errors, status=400)
