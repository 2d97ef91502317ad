"""Accounts: sign in, sign out and the signed-in person's page."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from campaigns import services
from campaigns.auth import current_user, login_required, safe_next, sign_in, sign_out
from config.db import get_session
from config.ratelimit import Limit, hit, is_blocked

blueprint = Blueprint("campaigns", __name__, template_folder="templates")

SIGN_IN_PER_LOGIN = Limit("sign-in:login", max_hits=10, window=dt.timedelta(minutes=15))
SIGN_IN_PER_ADDRESS = Limit("sign-in:address", max_hits=50, window=dt.timedelta(minutes=15))


@blueprint.route("/connexion", methods=["GET", "POST"], endpoint="sign_in")
def sign_in_page() -> str | Response | tuple[str, int]:
    next_url = safe_next(request.values.get("next"), url_for("campaigns.account"))
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url)
        return render_template("campaigns/sign_in.html", next_url=next_url, login="")

    login = request.form.get("login", "").strip()[:320]
    password = request.form.get("password", "")[:1024]
    session = get_session()
    # Only failures count: a whole school behind one address signs in freely, a guesser doesn't.
    address = request.remote_addr or "unknown"
    if is_blocked(session, SIGN_IN_PER_LOGIN, login.lower()) or is_blocked(
        session, SIGN_IN_PER_ADDRESS, address
    ):
        flash(_("Trop de tentatives de connexion. Réessayez dans 15 minutes."), "error")
        return render_template("campaigns/sign_in.html", next_url=next_url, login=login), 429

    user = services.authenticate(session, login, password) if login and password else None
    if user is None:
        hit(session, SIGN_IN_PER_LOGIN, login.lower())
        hit(session, SIGN_IN_PER_ADDRESS, address)
        session.commit()
        flash(_("L’adresse e-mail, l’identifiant ou le mot de passe est incorrect."), "error")
        return render_template("campaigns/sign_in.html", next_url=next_url, login=login), 401

    session.commit()
    sign_in(user)
    return redirect(next_url)


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
