"""`parcours lti …`: registering platforms and rotating the tool's keys."""

from __future__ import annotations

import click


@click.group()
def lti() -> None:
    """LTI 1.3: platforms (LMS) and the tool's signing keys."""
