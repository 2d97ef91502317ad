"""The "Plateformes LTI" section of `/admin`: filled by the administration work."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Mount the section under `/admin`."""
