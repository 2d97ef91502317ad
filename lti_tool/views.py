"""The tool's endpoints: OIDC login, launch, JWKS, configuration (filled by the launch work)."""

from __future__ import annotations

from flask import Blueprint, Flask

blueprint = Blueprint("lti", __name__, template_folder="templates")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
