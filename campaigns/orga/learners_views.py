"""The organization's learners: SIECLE-like import, list, login methods, password reset.

Schools (SCO) see their imported learner list ("Élèves"); other organizations see the people who
took part in their campaigns ("Participants"). Every member sees the list and may give a student
a temporary password, after a confirmation page (`confirm_reset_password`, GET) whose form posts
to `reset_password`; only admins import the list.

Temporary passwords are rendered directly in the POST response (never flashed: Flask's session
cookie is signed, not encrypted), with `Cache-Control: no-store`, and never logged.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from campaigns.orga import learners
from campaigns.orga.access import admin_required, current_workspace, member_required
from campaigns.orga.learners import LearnerFileError, LoginMethod, LoginNotManaged
from campaigns.shared.models import Learner, ParticipationStatus
from config.db import get_session
from config.numbers import parse_int

blueprint = Blueprint("orga_learners", __name__, template_folder="templates")

METHOD_LABELS = {
    LoginMethod.EMAIL: _l("Adresse e-mail"),
    LoginMethod.USERNAME: _l("Identifiant"),
    LoginMethod.GAR: _l("Médiacentre (GAR)"),
    LoginMethod.LMS: _l("LMS"),
}
STATUS_LABELS = {
    ParticipationStatus.STARTED: _l("En cours de test"),
    ParticipationStatus.TO_SHARE: _l("En attente d’envoi"),
    ParticipationStatus.SHARED: _l("Résultats reçus"),
}


PARIS = ZoneInfo("Europe/Paris")


def _paris_date(moment: dt.datetime | None) -> str:
    return moment.astimezone(PARIS).strftime("%d/%m/%Y") if moment is not None else ""


def _page_number() -> int:
    return parse_int(request.args.get("page"), 1, high=999_999)


def _list_args() -> dict[str, str]:
    """The list's search, class, disabled filter and page, carried through the confirmation and
    the result pages so that "Annuler" and "Retour à la liste" come back to the same place."""
    found: dict[str, str] = {}
    for name, limit in (("q", 100), ("division", 64)):
        value = request.values.get(name, "").strip()[:limit]
        if value:
            found[name] = value
    if request.values.get("desactives") == "1":
        found["desactives"] = "1"
    page = parse_int(request.values.get("page"), 1, high=999_999)
    if page > 1:
        found["page"] = str(page)
    return found


def _render_list(
    *, errors: LearnerFileError | None = None, upload_error: str | None = None, status: int = 200
) -> tuple[str, int]:
    ws = current_workspace()
    session = get_session()
    q = request.args.get("q", "").strip()[:100]
    if not ws.is_school:
        return render_template(
            "orga/learners/participants.html",
            section="eleves",
            page=learners.participant_page(session, ws.organization, q=q, page=_page_number()),
            q=q,
            paris_date=_paris_date,
        ), status
    division = request.args.get("division", "").strip()[:64] or None
    include_disabled = request.args.get("desactives") == "1"
    page = learners.learner_page(
        session,
        ws.organization,
        q=q,
        division=division,
        include_disabled=include_disabled,
        page=_page_number(),
    )
    return render_template(
        "orga/learners/index.html",
        section="eleves",
        page=page,
        q=q,
        division=division,
        include_disabled=include_disabled,
        divisions=learners.divisions(session, ws.organization),
        method_labels=METHOD_LABELS,
        status_labels=STATUS_LABELS,
        paris_date=_paris_date,
        errors=errors,
        upload_error=upload_error,
        max_rows=learners.MAX_ROWS,
        list_args=_list_args(),
    ), status


@blueprint.get("/orga/eleves", endpoint="index")
@member_required
def index() -> tuple[str, int]:
    return _render_list()


@blueprint.post("/orga/eleves/import", endpoint="import_file")
@admin_required
def import_file() -> Response | tuple[str, int]:
    ws = current_workspace()
    if not ws.is_school:
        abort(404)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_list(upload_error=_("Choisissez le fichier à importer."), status=400)
    session = get_session()
    try:
        report = learners.import_learners(session, ws.organization, upload.stream.read())
        session.commit()
    except LearnerFileError as error:
        session.rollback()
        return _render_list(errors=error, status=400)
    except IntegrityError:
        # Another import of the same school ran at the same moment: nothing of this one stays.
        session.rollback()
        flash(_("Un autre import était en cours. Réessayez dans un instant."), "error")
        return redirect(url_for("orga_learners.index"))
    flash(
        _(
            "Import terminé : %(created)d élèves ajoutés, %(updated)d mis à jour,"
            " %(disabled)d désactivés (%(unchanged)d inchangés).",
            created=report.created,
            updated=report.updated,
            disabled=report.disabled,
            unchanged=report.unchanged,
        ),
        "success",
    )
    return redirect(url_for("orga_learners.index"))


def _learner(learner_id: int) -> Learner:
    found = learners.organization_learner(
        get_session(), current_workspace().organization, learner_id
    )
    if found is None:
        abort(404)
    return found


_REFUSALS = {
    "no_account": _l("Cet élève ne s’est encore jamais connecté : il n’a pas de compte."),
    "sso_only": _l(
        "Cet élève se connecte par le Médiacentre (GAR) ou par l’ENT/LMS : son mot de passe"
        " n’est pas géré ici."
    ),
    "has_login": _l("Cet élève a déjà une adresse e-mail ou un identifiant."),
    "staff": _l(
        "Ce compte appartient aussi à un membre d’une organisation : seul son titulaire peut"
        " changer son mot de passe."
    ),
}


def _refused(learner: Learner, error: LoginNotManaged) -> tuple[str, int]:
    get_session().rollback()
    return render_template(
        "orga/learners/login_result.html",
        section="eleves",
        learner=learner,
        refusal=_REFUSALS.get(error.code, _REFUSALS["sso_only"]),
        list_args=_list_args(),
    ), 409


def _secret(html: str) -> Response:
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/orga/eleves/<int:learner_id>/mot-de-passe", endpoint="confirm_reset_password")
@member_required
def confirm_reset_password(learner_id: int) -> tuple[str, int]:
    """The question asked before `reset_password`: a page (no script, fine in an LMS iframe)
    whose form posts to it. A learner whose password the school may not reset is told why at
    once, with nothing to confirm."""
    learner = _learner(learner_id)
    try:
        user = learners.password_account(get_session(), learner)
    except LoginNotManaged as error:
        return _refused(learner, error)
    return render_template(
        "orga/learners/confirm_reset.html",
        section="eleves",
        learner=learner,
        login=user.username or user.email,
        list_args=_list_args(),
    ), 200


@blueprint.post("/orga/eleves/<int:learner_id>/mot-de-passe", endpoint="reset_password")
@member_required
def reset_password(learner_id: int) -> Response | tuple[str, int]:
    learner = _learner(learner_id)
    session = get_session()
    try:
        user, password = learners.reset_password(session, learner)
    except LoginNotManaged as error:
        return _refused(learner, error)
    session.commit()
    return _secret(
        render_template(
            "orga/learners/login_result.html",
            section="eleves",
            learner=learner,
            login=user.username or user.email,
            password=password,
            list_args=_list_args(),
        )
    )


@blueprint.post("/orga/eleves/<int:learner_id>/identifiant", endpoint="create_username")
@member_required
def create_username(learner_id: int) -> Response | tuple[str, int]:
    learner = _learner(learner_id)
    session = get_session()
    try:
        _user, username, password = learners.create_username(session, learner)
    except LoginNotManaged as error:
        return _refused(learner, error)
    session.commit()
    return _secret(
        render_template(
            "orga/learners/login_result.html",
            section="eleves",
            learner=learner,
            login=username,
            password=password,
            new_username=True,
            list_args=_list_args(),
        )
    )
