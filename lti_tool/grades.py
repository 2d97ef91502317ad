"""Grade passback (Assignment and Grade Services): filled by the grades work."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session


def init_app(app: Flask) -> None:
    """Subscribe the participation listeners."""


def resend(session: Session, lti_learner_id: int) -> bool:
    """Queue again the grade of a learner whose delivery failed ("renvoyer")."""
    raise NotImplementedError
