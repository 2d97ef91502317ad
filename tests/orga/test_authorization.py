"""Every route of the teacher panel, tried by a visitor and by a member of another organization.

The routes are read from the application's URL map, so a route added later is covered without
editing this file. Ids in the URL are those of the *other* organization's objects: a member must
get a 404 for each of them (never a 403 that would confirm the object exists).
"""

from __future__ import annotations

import pytest

from campaigns.journey import services as journey
from campaigns.shared.models import Invitation, Learner, Membership, MembershipRole
from config.db import utcnow
from tests.conftest import csrf_token
from tests.journey_helpers import student
from tests.orga_helpers import sign_in, world

PANEL_BLUEPRINTS = (
    "orga",
    "orga_campaigns",
    "orga_campaign",
    "orga_exports",
    "orga_team",
    "orga_learners",
)
# Pages reached from outside the panel: the terms of use (before the first visit) and the
# invitation link (by people who are not members yet).
OPEN_ENDPOINTS = {"orga.terms", "orga_team.accept"}


def panel_rules(app):
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".", 1)[0] in PANEL_BLUEPRINTS
        and rule.endpoint not in OPEN_ENDPOINTS
    ]


@pytest.fixture
def foreign_ids(db_session):
    """A world, and the ids of objects that belong to the *other* organization."""
    w = world(db_session)
    someone = student(db_session, 7)
    participation = journey.join(db_session, w.other_campaign, someone)
    learner = Learner(
        organization_id=w.other.id, first_name="Zoé", last_name="Ailleurs", division="3E"
    )
    db_session.add(learner)
    db_session.flush()
    membership = db_session.query(Membership).filter_by(organization_id=w.other.id).first()
    invitation = Invitation(
        organization_id=w.other.id,
        email="invite@ailleurs.example",
        role=MembershipRole.MEMBER,
        token_hash="0" * 64,
        expires_at=utcnow(),
    )
    db_session.add(invitation)
    db_session.commit()
    return w, {
        "campaign_id": w.other_campaign.id,
        "participation_id": participation.id,
        "learner_id": learner.id,
        "membership_id": membership.id,
        "invitation_id": invitation.id,
    }


def concrete(rule, ids) -> str:
    missing = set(rule.arguments) - set(ids)
    assert not missing, f"{rule.rule}: add an id for {missing} to this test"
    return rule.build({name: ids[name] for name in rule.arguments})[1]


# Pages that ask before a destructive POST: GET routes with ids, swept like the actions.
CONFIRMATIONS = {"orga_team.confirm_remove", "orga_learners.confirm_reset_password"}


def test_the_panel_has_the_expected_routes(app):
    endpoints = {rule.endpoint for rule in panel_rules(app)}
    assert {"orga.home", "orga.documentation", "orga_campaigns.index"} <= endpoints
    assert endpoints >= CONFIRMATIONS


def test_visitors_are_sent_to_sign_in_from_every_panel_page(app, client, foreign_ids):
    _, ids = foreign_ids
    visited = set()
    for rule in panel_rules(app):
        if "GET" not in rule.methods:
            continue
        response = client.get(concrete(rule, ids))
        assert response.status_code == 302, rule.rule
        assert "/connexion" in response.headers["Location"], rule.rule
        visited.add(rule.endpoint)
    assert visited >= CONFIRMATIONS


def test_another_organizations_objects_are_not_found(app, client, foreign_ids):
    w, ids = foreign_ids
    sign_in(client, w.admin.email)  # an admin: the strongest role, in the wrong organization
    token = csrf_token(client, "/orga/documentation")
    checked = set()
    for rule in panel_rules(app):
        if not set(rule.arguments) & set(ids):
            continue
        path = concrete(rule, ids)
        for method in sorted(rule.methods & {"GET", "POST"}):
            response = client.open(path, method=method, data={"csrf_token": token})
            assert response.status_code == 404, f"{method} {path}: {response.status_code}"
            checked.add((method, rule.endpoint))
    assert {("GET", endpoint) for endpoint in CONFIRMATIONS} <= checked
    assert {("POST", "orga_team.remove"), ("POST", "orga_learners.reset_password")} <= checked


def test_posts_without_a_csrf_token_are_refused(app, client, foreign_ids):
    w, _ = foreign_ids
    own = {
        "campaign_id": w.campaign.id,
        "participation_id": 0,
        "learner_id": 0,
        "membership_id": 0,
        "invitation_id": 0,
    }
    sign_in(client, w.admin.email)
    for rule in panel_rules(app):
        if "POST" not in rule.methods:
            continue
        response = client.post(concrete(rule, own), data={})
        assert response.status_code == 400, rule.rule
