"""SAML 2.0 service provider and the GAR connector."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Mount the connector's pages (called by the app factory)."""
    from campaigns import connectors
    from sso import admin, cli, devidp, views

    views.init_app(app)
    admin.init_app(app)
    devidp.init_app(app)
    connectors.describe_audit(cli.ACTION_LABELS, cli.OBJECT_LABELS)
