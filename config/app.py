"""The application factory: wires settings, database, security, i18n and the packages' views.

`create_app` makes no query, migration or HTTP call: it can build an app with the database down.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

import lti_tool
import sso
from campaigns.accounts import sessions
from campaigns.accounts import views as account_views
from campaigns.accounts.auth import init_auth
from campaigns.accounts.external import set_identity_key
from campaigns.district import views as district_views
from campaigns.journey import views as journey_views
from campaigns.orga import (
    access,
    campaign_admin_views,
    exports_views,
    learners_views,
    reporting_views,
    team_views,
)
from config import views
from config.db import Database, close_session
from config.i18n import init_i18n
from config.logging import init_request_ids
from config.numbers import BoundedIntConverter
from config.security import add_frame_origins_source, init_security
from config.settings import Settings
from lti_tool.services import platform_origins


class _Flask(Flask):
    """Flask, deciding once per function whether it is a coroutine to wait for: Flask asks
    `inspect` again for each view, hook and context processor of every request."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(func, "parcours_runs_as_is", False):
            return func
        made = super().ensure_sync(func)
        if made is func and isinstance(func, types.FunctionType):
            func.parcours_runs_as_is = True  # type: ignore[attr-defined]
        return made


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = _Flask("config", static_url_path="/static")
    set_identity_key(settings.secret_key)  # logs name external identities by a keyed hash
    # Before any route is added: ids in URLs are bounded (config/numbers.py).
    app.url_map.converters["int"] = BoundedIntConverter
    app.config.update(
        PARCOURS_SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        TESTING=settings.testing,
        SESSION_COOKIE_NAME="parcours_session",
        SESSION_COOKIE_HTTPONLY=True,
        # Over HTTPS the pages must also work inside an LMS iframe (a third-party context), which
        # needs SameSite=None; forms stay protected by CSRF tokens. Plain HTTP (development)
        # keeps Lax, as browsers refuse SameSite=None without Secure.
        SESSION_COOKIE_SECURE=settings.https,
        SESSION_COOKIE_SAMESITE="None" if settings.https else "Lax",
        # Browsers that block third-party cookies still keep a partitioned one (CHIPS).
        SESSION_COOKIE_PARTITIONED=settings.https,
        # The cookie lives as long as the server-side session, which ends a fixed time after
        # sign-in (`campaigns.accounts.sessions`); it is not re-sent, nor extended, on every response.
        PERMANENT_SESSION_LIFETIME=sessions.SESSION_LIFETIME,
        SESSION_REFRESH_EACH_REQUEST=False,
        PREFERRED_URL_SCHEME="https" if settings.https else "http",
        # A student may stay long on one question: the token lives as long as the session.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=True,
    )
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )

    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.globals["url_for"] = _remembered_url_for(app)
    app.extensions["parcours.database"] = database or Database(settings)
    app.teardown_appcontext(close_session)

    init_request_ids(app)
    init_security(app)
    init_i18n(app)
    init_auth(app)
    add_frame_origins_source(app, platform_origins)

    app.register_blueprint(views.blueprint)
    for module in (account_views, journey_views):  # accounts, then the student journey
        app.register_blueprint(module.blueprint)
    for module in (  # the teacher panel (Orga)
        access,
        campaign_admin_views,
        reporting_views,
        exports_views,
        team_views,
        learners_views,
    ):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(district_views.blueprint)
    lti_tool.init_app(app)
    sso.init_app(app)
    views.register_error_handlers(app)
    return app


URLS_REMEMBERED = 4096


def _remembered_url_for(app: Flask) -> Callable[..., str]:
    """Templates' `url_for`, remembering the addresses it built: a page links to a dozen that
    hardly ever change (the header's, the static files'), and the rules of the URL map are
    fixed once the app is made. The values are remembered in their order (it is the order of
    the query string) and with their type (`page=1` is not `page=True`). Addresses with options
    (`_external`, `_anchor`…), relative endpoints (`.index`, which depend on the blueprint) and
    values that cannot be remembered (a list) are built every time."""

    @functools.lru_cache(maxsize=URLS_REMEMBERED)
    def remembered(root: str, endpoint: str, values: tuple[tuple[str, type, Any], ...]) -> str:
        return app.url_for(endpoint, **{key: value for key, _, value in values})

    def url_for(endpoint: str, **values: Any) -> str:
        if not endpoint.startswith(".") and not any(key.startswith("_") for key in values):
            key = tuple((name, type(value), value) for name, value in values.items())
            try:
                return remembered(request.script_root, endpoint, key)
            except TypeError:  # a value that is not hashable (a list)
                pass
        return app.url_for(endpoint, **values)

    return url_for
