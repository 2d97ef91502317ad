"""Accounts: sign in, sign out, the signed-in person's page, password change, confirming the
e-mail address and choosing a new password through a mailed link.

Password guessing is slowed down without letting anyone lock a user out (README, "Security"):
- an attempt from a browser where this login signed in before (it holds a device cookie for
  it) counts against that browser only (`SIGN_IN_PER_DEVICE`);
- any other attempt counts against the login (`SIGN_IN_PER_LOGIN`) and the client address
  (`SIGN_IN_PER_ADDRESS`): a flood of wrong passwords shuts unknown browsers out for a while,
  never the owner's own browsers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from campaigns.accounts import links, users
from campaigns.accounts.auth import (
    current_person,
    current_session,
    current_user,
    home_of,
    login_required,
    over_limit,
    safe_next,
    sign_in,
    sign_out,
)
from campaigns.accounts.messages import weak_password
from campaigns.shared.errors import InvalidInput
from campaigns.shared.models import AccountToken, AccountTokenPurpose, User
from campaigns.shared.organizations import organizations_of
from config.db import get_session
from config.i18n import set_user_locale_source
from config.ratelimit import Limit, hit, release
from config.settings import Settings

blueprint = Blueprint("campaigns", __name__, template_folder="templates")

SIGN_IN_PER_LOGIN = Limit("sign-in:login", max_hits=10, window=dt.timedelta(minutes=15))
SIGN_IN_PER_DEVICE = Limit("sign-in:device", max_hits=10, window=dt.timedelta(minutes=15))
SIGN_IN_PER_ADDRESS = Limit("sign-in:address", max_hits=50, window=dt.timedelta(minutes=15))
CURRENT_PASSWORD_GUESSES = Limit(
    "password-change:user", max_hits=5, window=dt.timedelta(minutes=15)
)
RESET_REQUESTS_PER_ADDRESS = Limit("reset:address", max_hits=10, window=dt.timedelta(hours=1))
RESET_REQUESTS_PER_EMAIL = Limit("reset:email", max_hits=3, window=dt.timedelta(hours=1))
CONFIRMATIONS_PER_USER = Limit("confirm:user", max_hits=5, window=dt.timedelta(hours=1))
LINK_GUESSES = Limit("account-link:address", max_hits=20, window=dt.timedelta(minutes=10))

DEVICE_COOKIE = "parcours_device"
DEVICE_LIFETIME = dt.timedelta(days=180)
DEVICE_LOGINS = 5  # logins remembered per browser (a family computer)

LINK_ERRORS = {
    "unknown": _l(
        "Ce lien n’est pas valide. Si vous avez reçu plusieurs messages, utilisez le lien du "
        "plus récent."
    ),
    "expired": _l("Ce lien a expiré. Demandez-en un nouveau."),
    "used": _l("Ce lien a déjà été utilisé."),
    "stale": _l("Ce lien a été envoyé à une adresse qui n’est plus celle du compte."),
    "limited": _l("Trop de liens essayés. Réessayez dans quelques minutes."),
}
LINK_STATUS = {"unknown": 404, "limited": 429}


def _settings() -> Settings:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings


def _secret() -> str:
    secret: str = current_app.config["SECRET_KEY"]
    return secret


def _address() -> str:
    return request.remote_addr or "unknown"


# -- device cookies -------------------------------------------------------------------------------


def _devices() -> URLSafeTimedSerializer:
    """Device cookies are signed and dated: one older than `DEVICE_LIFETIME` is not trusted,
    whatever the browser kept."""
    return URLSafeTimedSerializer(_secret(), salt="parcours-device")


def _login_tag(login: str) -> str:
    """The login as a device cookie names it: a keyed hash, never the address itself."""
    return hmac.new(_secret().encode(), login.encode(), hashlib.sha256).hexdigest()[:32]


def _device_entries() -> list[list[str]]:
    raw = request.cookies.get(DEVICE_COOKIE, "")
    if not raw or len(raw) > 4096:
        return []
    try:
        entries = _devices().loads(raw, max_age=int(DEVICE_LIFETIME.total_seconds()))
    except BadSignature:  # forged, altered or too old (SignatureExpired is a BadSignature)
        return []
    if not isinstance(entries, list):
        return []
    return [
        e
        for e in entries
        if isinstance(e, list) and len(e) == 2 and all(isinstance(v, str) for v in e)
    ]


def _device_of(login: str) -> str | None:
    """This browser's device id for `login`, when the login signed in here before."""
    tag = _login_tag(login)
    return next((device for known, device in _device_entries() if known == tag), None)


def _remember_device(response: Response, login: str) -> None:
    """Trust this browser for `login` from now on (a new device id, the oldest forgotten)."""
    tag = _login_tag(login)
    entries = [e for e in _device_entries() if e[0] != tag]
    entries = [[tag, secrets.token_urlsafe(16)], *entries][:DEVICE_LOGINS]
    settings = _settings()
    response.set_cookie(
        DEVICE_COOKIE,
        _devices().dumps(entries),
        max_age=int(DEVICE_LIFETIME.total_seconds()),
        httponly=True,
        secure=settings.https,
        samesite="None" if settings.https else "Lax",
        path="/",
    )


# -- sign in and out ------------------------------------------------------------------------------


@blueprint.route("/connexion", methods=["GET", "POST"], endpoint="sign_in")
def sign_in_page() -> str | Response | tuple[str, int]:
    # "" when the visitor asked for no page (or for one off the site): see `home_of`.
    next_url = safe_next(request.values.get("next"), "")
    if request.method == "GET":
        user = current_user()
        if user is not None:
            return redirect(next_url or home_of(user))
        return render_template("campaigns/sign_in.html", next_url=next_url, login="")

    login = request.form.get("login", "").strip()[:320]
    password = request.form.get("password", "")[:1024]
    key = login.lower()
    db = get_session()
    secret, address = _secret(), _address()
    device = _device_of(key)
    # Counted (and committed) before the slow password check, so parallel guesses see each
    # other; given back on success, so a whole school behind one address signs in freely.
    if device is not None:
        counted = [(SIGN_IN_PER_DEVICE, device)]
    else:
        counted = [(SIGN_IN_PER_LOGIN, key), (SIGN_IN_PER_ADDRESS, address)]
    verdicts = [hit(db, limit, value, secret=secret) for limit, value in counted]
    db.commit()
    if not all(v.allowed for v in verdicts):
        flash(_("Trop de tentatives de connexion. Réessayez dans 15 minutes."), "error")
        return render_template("campaigns/sign_in.html", next_url=next_url, login=login), 429

    user = users.authenticate(db, login, password) if login and password else None
    if user is None:
        flash(_("L’adresse e-mail, l’identifiant ou le mot de passe est incorrect."), "error")
        return render_template("campaigns/sign_in.html", next_url=next_url, login=login), 401

    for limit, value in counted:
        release(db, limit, value, secret=secret)
    must_change = users.must_change_password(db, user)
    next_url = next_url or home_of(user)
    sign_in(user, password_change_required=must_change, then=next_url)
    db.commit()
    if must_change:
        response = redirect(url_for("campaigns.change_password", next=next_url))
    else:
        response = redirect(next_url)
    _remember_device(response, key)
    return response


@blueprint.post("/deconnexion", endpoint="sign_out")
def sign_out_page() -> Response:
    sign_out()
    get_session().commit()
    flash(_("Vous êtes déconnecté."), "info")
    return redirect(url_for("core.home"))


# -- the account ----------------------------------------------------------------------------------


@blueprint.get("/mon-compte")
@login_required
def account() -> str:
    user = current_user()
    if user is None:  # login_required saw to it; keeps type checkers informed
        abort(401)
    organizations = organizations_of(get_session(), user)
    return render_template("campaigns/account.html", user=user, organizations=organizations)


@blueprint.post("/mon-compte/confirmer", endpoint="resend_confirmation")
@login_required
def resend_confirmation() -> Response:
    user = current_user()
    if user is None:
        abort(401)
    if user.email is not None and user.email_verified_at is None:
        if over_limit(CONFIRMATIONS_PER_USER, str(user.id)):
            flash(_("Trop de messages envoyés. Réessayez dans une heure."), "error")
            return redirect(url_for("campaigns.account"), 303)
        db = get_session()
        links.send_confirmation(db, user, _settings().public_url)
        db.commit()
        flash(
            _("Un lien de confirmation a été envoyé à %(email)s.", email=user.email),
            "info",
        )
    return redirect(url_for("campaigns.account"), 303)


def _link_refused(code: str) -> tuple[str, int]:
    get_session().rollback()
    message = LINK_ERRORS.get(code, LINK_ERRORS["unknown"])
    status = LINK_STATUS.get(code, 410)
    return render_template("campaigns/link_refused.html", message=message), status


def _usable_link(purpose: AccountTokenPurpose, token: str) -> tuple[AccountToken, User]:
    """The mailed link of `token` and its account, or the page refusing it (aborts). Unknown
    tokens are counted per address; a usable one gives its attempt back."""
    if over_limit(LINK_GUESSES, _address()):
        abort(make_response(*_link_refused("limited")))
    db = get_session()
    try:
        found, owner = links.find_link(db, purpose, token)
    except links.LinkUnusable as error:
        abort(make_response(*_link_refused(error.code)))
    release(db, LINK_GUESSES, _address(), secret=_secret())
    db.commit()
    return found, owner


@blueprint.route("/mon-compte/confirmer/<token>", methods=["GET", "POST"], endpoint="confirm_email")
def confirm_email(token: str) -> str | Response | tuple[str, int]:
    """The link in the "confirmez votre adresse" e-mail. It proves the address only to the
    account's own signed-in session: the link proves the mailbox, the session the password. So
    the owner of an address that someone else signed up with cannot prove that person's account
    by clicking (they are offered "mot de passe oublié", which takes the account back). GET
    shows a button, so that a mail scanner that opens links does not use it up."""
    found, owner = _usable_link(AccountTokenPurpose.VERIFY_EMAIL, token)
    db = get_session()
    user = current_user()
    if user is None or user.id != owner.id:
        return render_template(
            "campaigns/confirm_email.html",
            email=found.email,
            token=token,
            signed_in_elsewhere=user is not None,
            own_account=False,
        ), 403 if request.method == "POST" else 200
    if request.method == "GET":
        return render_template(
            "campaigns/confirm_email.html", email=found.email, token=token, own_account=True
        )
    try:
        links.confirm_email(db, token, user)
    except links.LinkUnusable as error:  # used meanwhile
        return _link_refused(error.code)
    db.commit()
    flash(_("Votre adresse e-mail est confirmée."), "info")
    return redirect(url_for("campaigns.account"), 303)


# -- passwords ------------------------------------------------------------------------------------


PASSWORD_ERRORS = {
    "wrong_current": _l("Le mot de passe actuel est incorrect."),
    "unchanged": _l("Le nouveau mot de passe doit être différent de l’actuel."),
}


@blueprint.route("/mon-compte/mot-de-passe", methods=["GET", "POST"], endpoint="change_password")
@login_required
def change_password_page() -> str | Response | tuple[str, int]:
    user, row = current_user(), current_session()
    if user is None or row is None:
        abort(401)
    next_url = safe_next(request.values.get("next"), url_for("campaigns.account"))
    required = row.password_change_required
    if request.method == "GET":
        return render_template(
            "campaigns/change_password.html", next_url=next_url, required=required
        )

    def page(message: object, status: int) -> tuple[str, int]:
        flash(str(message), "error")
        return render_template(
            "campaigns/change_password.html", next_url=next_url, required=required
        ), status

    db = get_session()
    # Counted before the check: a stolen session cannot try current passwords one after the
    # other (given back when the current password was right).
    if over_limit(CURRENT_PASSWORD_GUESSES, str(user.id)):
        return page(_("Trop de tentatives. Réessayez dans 15 minutes."), 429)
    new = request.form.get("new_password", "")[:1024]
    try:
        users.change_password(
            db, user, current=request.form.get("current_password", "")[:1024], new=new
        )
    except InvalidInput as error:
        db.rollback()
        if error.code != "wrong_current":
            release(db, CURRENT_PASSWORD_GUESSES, str(user.id), secret=_secret())
            db.commit()
        return page(PASSWORD_ERRORS.get(error.code) or weak_password(new), 400)
    release(db, CURRENT_PASSWORD_GUESSES, str(user.id), secret=_secret())
    # Every session ends, this one included: it goes on under a new session id.
    links.password_replaced(db, user)
    sign_in(user)
    db.commit()
    flash(_("Votre mot de passe a été modifié."), "info")
    return redirect(next_url)


@blueprint.route("/mot-de-passe-oublie", methods=["GET", "POST"], endpoint="forgotten_password")
def forgotten_password() -> str | Response | tuple[str, int]:
    """Ask for a link to choose a new password. The answer is the same whether the address has
    an account or not; only its owner learns, by e-mail."""
    if request.method == "GET":
        return render_template("campaigns/forgotten_password.html", email="", sent=False)
    typed = request.form.get("email", "").strip()[:320]
    try:
        address = users.normalize_email(typed)
    except InvalidInput:
        flash(_("Saisissez une adresse e-mail valide, par exemple nom@exemple.fr."), "error")
        return render_template("campaigns/forgotten_password.html", email=typed, sent=False), 400
    if over_limit(RESET_REQUESTS_PER_ADDRESS, _address()):
        flash(_("Trop de demandes depuis cette adresse. Réessayez plus tard."), "error")
        return render_template("campaigns/forgotten_password.html", email=typed, sent=False), 429
    db = get_session()
    if not over_limit(RESET_REQUESTS_PER_EMAIL, address):  # no mail bombing: 3 an hour at most
        links.request_password_reset(db, address, _settings().public_url)
        db.commit()
    return render_template("campaigns/forgotten_password.html", email=address, sent=True)


@blueprint.route("/mot-de-passe-oublie/<token>", methods=["GET", "POST"], endpoint="reset_password")
def reset_password(token: str) -> str | Response | tuple[str, int]:
    """The link in the "mot de passe oublié" e-mail: choose a new password. It proves the
    address and ends every session of the account (someone else's included)."""
    found, _user = _usable_link(AccountTokenPurpose.RESET_PASSWORD, token)
    db = get_session()
    if request.method == "GET":
        return render_template("campaigns/reset_password.html", email=found.email, token=token)
    new = request.form.get("new_password", "")[:1024]
    try:
        user = links.reset_password(db, token, new)
    except links.LinkUnusable as error:
        return _link_refused(error.code)
    except InvalidInput:
        db.rollback()
        flash(weak_password(new), "error")
        return render_template("campaigns/reset_password.html", email=found.email, token=token), 400
    db.commit()
    sign_in(user)
    db.commit()
    flash(_("Votre mot de passe a été modifié."), "info")
    response = redirect(url_for("campaigns.account"), 303)
    if user.email:
        _remember_device(response, user.email)
    return response


# -- wiring ---------------------------------------------------------------------------------------


@blueprint.app_context_processor
def _inject_current_user() -> dict[str, object]:
    return {"current_user": current_user, "current_person": current_person}


@blueprint.record_once
def _register_locale_source(state: BlueprintSetupState) -> None:
    set_user_locale_source(state.app, _user_locale)


def _user_locale() -> str | None:
    person = current_person()
    return person.locale if person is not None else None
