"""Accounts: sign in, sign out and the signed-in person's page."""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from campaigns import services
from campaigns.auth import current_user, login_required, safe_next, sign_in, sign_out
from config.db import get_session
from config.i18n import set_user_locale_source
from config.ratelimit import Limit, hit, release

blueprint = Blueprint("campaigns", __name__, template_folder="templates")

SIGN_IN_PER_LOGIN = Limit("sign-in:login", max_hits=10, window=dt.timedelta(minutes=15))
SIGN_IN_PER_ADDRESS = Limit("sign-in:address", max_hits=50, window=dt.timedelta(minutes=15))


@blueprint.route("/connexion", methods=["GET", "POST"], endpoint="sign_in")
def sign_in_page() -> str | Response | tuple[str, int]:
    account = url_for("campaigns.account")
    next_url = safe_next(request.values.get("next"), account)
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url)
        return render_template("campaigns/sign_in.html", next_url=next_url, login="")

    login = request.form.get("login", "").strip()[:320]
    password = request.form.get("password", "")[:1024]
    session = get_session()
    secret: str = current_app.config["SECRET_KEY"]
    address = request.remote_addr or "unknown"
    # Counted (and committed) before the slow password check, so parallel guesses see each
    # other; given back on success, so a whole school behind one address signs in freely.
    per_login = hit(session, SIGN_IN_PER_LOGIN, login.lower(), secret=secret)
    per_address = hit(session, SIGN_IN_PER_ADDRESS, address, secret=secret)
    session.commit()
    if not (per_login.allowed and per_address.allowed):
        flash(_("Trop de tentatives de connexion. Réessayez dans 15 minutes."), "error")
        return render_template("campaigns/sign_in.html", next_url=next_url, login=login), 429

    user = services.authenticate(session, login, password) if login and password else None
    if user is None:
        flash(_("L’adresse e-mail, l’identifiant ou le mot de passe est incorrect."), "error")
        return render_template("campaigns/sign_in.html", next_url=next_url, login=login), 401

    release(session, SIGN_IN_PER_LOGIN, login.lower(), secret=secret)
    release(session, SIGN_IN_PER_ADDRESS, address, secret=secret)
    must_change = services.must_change_password(session, user)
    if next_url == account and services.organizations_of(session, user):
        next_url = url_for("orga.home")  # teachers land in their panel
    session.commit()
    sign_in(user)
    if must_change:
        return redirect(url_for("campaigns.change_password", next=next_url))
    return redirect(next_url)


@blueprint.route("/mon-compte/mot-de-passe", methods=["GET", "POST"], endpoint="change_password")
@login_required
def change_password_page() -> str | Response | tuple[str, int]:
    user = current_user()
    if user is None:
        abort(401)
    next_url = safe_next(request.values.get("next"), url_for("campaigns.account"))
    session = get_session()
    required = services.must_change_password(session, user)
    if request.method == "GET":
        return render_template(
            "campaigns/change_password.html", next_url=next_url, required=required
        )
    try:
        services.change_password(
            session,
            user,
            current=request.form.get("current_password", "")[:1024],
            new=request.form.get("new_password", "")[:1024],
        )
    except services.InvalidInput as error:
        session.rollback()
        flash(str(PASSWORD_ERRORS.get(error.code, PASSWORD_ERRORS["weak"])), "error")
        return render_template(
            "campaigns/change_password.html", next_url=next_url, required=required
        ), 400
    session.commit()
    sign_in(user)  # this session stays valid; every other one is revoked
    flash(_("Votre mot de passe a été modifié."), "info")
    return redirect(next_url)


PASSWORD_ERRORS = {
    "wrong_current": _l("Le mot de passe actuel est incorrect."),
    "weak": _l(
        "Le nouveau mot de passe doit contenir au moins 8 caractères, "
        "dont une majuscule, une minuscule et un chiffre."
    ),
    "unchanged": _l("Le nouveau mot de passe doit être différent de l’actuel."),
}


@blueprint.post("/deconnexion", endpoint="sign_out")
def sign_out_page() -> Response:
    sign_out()
    flash(_("Vous êtes déconnecté."), "info")
    return redirect(url_for("core.home"))


@blueprint.get("/mon-compte")
@login_required
def account() -> str:
    user = current_user()
    if user is None:  # login_required saw to it; keeps type checkers informed
        abort(401)
    organizations = services.organizations_of(get_session(), user)
    return render_template("campaigns/account.html", user=user, organizations=organizations)


@blueprint.app_context_processor
def _inject_current_user() -> dict[str, object]:
    return {"current_user": current_user}


@blueprint.record_once
def _register_locale_source(state: BlueprintSetupState) -> None:
    set_user_locale_source(state.app, _user_locale)


def _user_locale() -> str | None:
    user = current_user()
    return user.locale if user is not None else None
