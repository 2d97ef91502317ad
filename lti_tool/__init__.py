"""LTI 1.3 tool: platform registrations, launches, deep linking, grade passback, rosters."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Mount the tool's pages and hook it to the rest of Parcours (called by the app factory)."""
    from lti_tool import admin, devlms, grades, views

    views.init_app(app)
    devlms.init_app(app)
    admin.init_app(app)
    grades.init_app(app)
