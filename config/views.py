"""Views that belong to the application as a whole: home, health check, error pages."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, redirect, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response as WerkzeugResponse

from campaigns.accounts.auth import current_user, home_of
from config.db import get_session
from config.migrations import head_revision

log = logging.getLogger(__name__)
blueprint = Blueprint("core", __name__)


@cache
def app_version() -> str:
    try:
        return version("parcours")
    except PackageNotFoundError:
        return "unknown"


@blueprint.get("/")
def home() -> str | WerkzeugResponse:
    """The public page; a signed-in person goes where they work instead (the panel for a member
    of an organization, their campaigns for a student)."""
    user = current_user()
    if user is not None:
        return redirect(home_of(user))
    return render_template("home.html")


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness and database check for load balancers and monitoring."""
    body: dict[str, Any] = {"status": "ok", "version": app_version()}
    session = get_session()
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("health check: database unreachable (%s)", type(error).__name__)
        body.update(status="error", database="unreachable")
        return jsonify(body), 503
    body["database"] = "ok"
    try:
        with session.begin_nested():
            current = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        body.update(status="error", schema="missing: run `parcours db upgrade`")
        return jsonify(body), 503
    body["schema"] = "up to date" if current == head_revision() else "migrations pending"
    return jsonify(body), 200


_MESSAGES = {
    400: lambda: _("La demande est incorrecte."),
    401: lambda: _("Vous devez vous connecter pour accéder à cette page."),
    403: lambda: _("Vous n’avez pas accès à cette page."),
    404: lambda: _("Cette page n’existe pas."),
    405: lambda: _("Cette action n’est pas possible ici."),
    410: lambda: _("Cette page n’est plus accessible."),
    413: lambda: _("L’envoi est trop volumineux."),
    429: lambda: _("Trop de tentatives. Réessayez dans quelques minutes."),
    500: lambda: _("Une erreur inattendue est survenue. Réessayez dans un instant."),
}


def _error_page(status: int, message: str | None = None) -> tuple[str | Response, int]:
    text_ = message or _MESSAGES.get(status, _MESSAGES[500])()
    if request.accept_mimetypes.best == "application/json" or request.path == "/healthz":
        return jsonify(error=text_, status=status), status
    return render_template("error.html", status=status, message=text_), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(_error: CSRFError) -> tuple[str | Response, int]:
        return _error_page(
            400, _("Votre session a expiré ou le formulaire est invalide. Rechargez la page.")
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> tuple[str | Response, int] | HTTPException:
        if error.code is None or error.code < 400:
            return error
        return _error_page(error.code)

    @app.errorhandler(InternalServerError)
    def _internal(_error: InternalServerError) -> tuple[str | Response, int]:
        # Flask has already logged the exception with its traceback (and our request id).
        return _error_page(500)
