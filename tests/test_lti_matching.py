"""A learner's first launch from a platform whose names are declared reliable is matched with
the school's learner list; the same student arriving from the ENT (SAML/GAR) and from the LMS
(LTI) then ends up as one Parcours user, whichever came first."""

import datetime as dt

import pytest
import responses
from sqlalchemy import func, select

from campaigns.accounts import users
from campaigns.shared.models import (
    AuthenticationMethod,
    Learner,
    Participation,
    User,
)
from lti_tool import maintenance
from lti_tool.models import LtiEvent, LtiLearner, LtiPendingMatch
from sso import registry as saml_registry
from tests.conftest import csrf_token
from tests.journey_helpers import assessment_campaign, school
from tests.lti_platform import FakePlatform
from tests.saml_idp import FakeIdp, student
from tests.test_lti_launch import launch, through_handoff
from tests.test_saml import login as saml_login

UAI = "0750999Z"


@pytest.fixture
def lms():
    platform = FakePlatform()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        platform.serve(mock)
        yield platform


@pytest.fixture
def world(db_session, lms):
    organization, teacher = school(db_session, uai=UAI)
    campaign = assessment_campaign(db_session, organization, teacher)
    lms.register(db_session, organization, match_learners=True)
    idp = FakeIdp()
    saml_registry.add_idp(
        db_session, slug="gar", metadata=idp.metadata(), organizations=[organization]
    )
    db_session.add(
        Learner(
            organization_id=organization.id,
            first_name="Léa",
            last_name="Martin",
            birthdate=dt.date(2011, 3, 14),
            division="2NDB",
        )
    )
    db_session.commit()
    return organization, campaign, idp


def first_launch(client, lms, campaign, **claims):
    """A learner's launch that stops at the birth-date page; its address."""
    response = launch(client, lms, custom={"campaign_code": campaign.code}, **claims)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"].startswith("/lti/rapprochement?t=")
    return response.headers["Location"]


def answer(client, page, day="14", month="3", year="2011", **extra):
    token = page.split("t=", 1)[1]
    data = {"t": token, "day": day, "month": month, "year": year, **extra}
    return through_handoff(client, client.post("/lti/rapprochement", data=data))


def from_the_ent(app, idp):
    """Léa signs in from the ENT and types her birth date: the answer, and her browser."""
    ent = app.test_client()
    assert saml_login(ent, idp, student()).headers["Location"] == "/sso/rattachement"
    token = csrf_token(ent, "/sso/rattachement")
    birthdate = {"day": "14", "month": "3", "year": "2011"}
    return ent.post("/sso/rattachement", data={"csrf_token": token, **birthdate}), ent


def identities(db_session, user_id):
    return sorted(
        db_session.scalars(
            select(AuthenticationMethod.provider).where(AuthenticationMethod.user_id == user_id)
        )
    )


def users_count(db_session):
    return db_session.scalar(select(func.count()).select_from(User))


def test_a_first_launch_asks_the_birth_date_then_links_the_learner(app, db_session, lms, world):
    _, campaign, _ = world
    client = app.test_client()
    before = users_count(db_session)
    page = first_launch(client, lms, campaign)
    shown = client.get(page)
    assert shown.status_code == 200
    assert "Bonjour Léa" in shown.get_data(as_text=True)
    assert users_count(db_session) == before  # nobody made until the student answers
    wrong = answer(client, page, day="15")
    assert wrong.status_code == 400 and "Aucun élève" in wrong.get_data(as_text=True)
    right = answer(client, page)
    assert right.status_code == 303
    assert right.headers["Location"].endswith(f"/campagnes/{campaign.code}/regles/1")
    assert client.get(right.headers["Location"]).status_code == 200  # signed in
    learner = db_session.scalars(select(Learner)).one()
    assert learner.user_id is not None
    assert identities(db_session, learner.user_id) == ["LTI"]
    assert db_session.scalars(select(LtiLearner)).one().user_id == learner.user_id
    assert db_session.scalars(select(Participation)).one().learner_id == learner.id
    assert count_pending(db_session) == 0
    assert client.post("/lti/rapprochement", data={"t": page.split("t=")[1]}).status_code == 400
    # The next launch goes straight in.
    again = launch(client, lms, custom={"campaign_code": campaign.code})
    assert again.status_code == 303 and "/campagnes/" in again.headers["Location"]


def count_pending(db_session):
    return db_session.scalar(select(func.count()).select_from(LtiPendingMatch))


def test_the_same_student_from_the_ent_then_the_lms_is_one_user(app, db_session, lms, world):
    _, campaign, idp = world
    matched, _ = from_the_ent(app, idp)
    assert matched.status_code == 303
    owner = db_session.scalars(select(Learner)).one().user_id
    before = users_count(db_session)

    moodle = app.test_client()
    page = first_launch(moodle, lms, campaign)
    assert answer(moodle, page).status_code == 303
    assert users_count(db_session) == before  # no second account
    assert identities(db_session, owner) == ["LTI", "SAML"]
    assert db_session.scalars(select(LtiLearner)).one().user_id == owner
    assert db_session.scalars(select(Participation)).one().user_id == owner
    assert any("rapproché (joined)" in e for e in db_session.scalars(select(LtiEvent.summary)))
    # Both ways now lead to that account, with no question asked.
    again = launch(moodle, lms, custom={"campaign_code": campaign.code})
    assert again.status_code == 303 and "/campagnes/" in again.headers["Location"]
    assert saml_login(app.test_client(), idp, student()).headers["Location"] == "/mes-parcours"


def test_the_same_student_from_the_lms_then_the_ent_is_one_user(app, db_session, lms, world):
    _, campaign, idp = world
    moodle = app.test_client()
    assert answer(moodle, first_launch(moodle, lms, campaign)).status_code == 303
    owner = db_session.scalars(select(Learner)).one().user_id
    before = users_count(db_session)

    matched, ent = from_the_ent(app, idp)
    assert matched.status_code == 303 and matched.headers["Location"] == "/mes-parcours"
    assert users_count(db_session) == before
    assert identities(db_session, owner) == ["LTI", "SAML"]
    assert ent.get("/mes-parcours").status_code == 200


def test_close_names_never_join_someone_elses_account(app, db_session, lms, world):
    _, campaign, idp = world
    assert from_the_ent(app, idp)[0].status_code == 303
    owner = db_session.scalars(select(Learner)).one().user_id
    moodle = app.test_client()
    page = first_launch(moodle, lms, campaign, given_name="Lea", family_name="Martine")
    refused = answer(moodle, page)
    assert refused.status_code == 400 and "Aucun élève" in refused.get_data(as_text=True)
    assert identities(db_session, owner) == ["SAML"]


def test_an_account_with_a_password_is_never_joined(app, db_session, lms, world):
    _, campaign, _ = world
    own = users.create_user(
        db_session,
        first_name="Léa",
        last_name="Martin",
        email="lea@example.org",
        password="Xx1-abcdefgh",
    )
    db_session.add(  # and signed in from an ENT once: only her password keeps her account hers
        AuthenticationMethod(user_id=own.id, provider="SAML", issuer="autre-ent", external_id="x")
    )
    learner = db_session.scalars(select(Learner)).one()
    learner.user_id = own.id  # linked by the school to the account she made herself
    db_session.commit()
    moodle = app.test_client()
    refused = answer(moodle, first_launch(moodle, lms, campaign))
    assert refused.status_code == 400 and "Aucun élève" in refused.get_data(as_text=True)
    assert identities(db_session, own.id) == ["PASSWORD", "SAML"]


def test_a_student_not_on_the_list_goes_on_with_an_account_of_their_own(
    app, db_session, lms, world
):
    _, campaign, _ = world
    client = app.test_client()
    page = first_launch(client, lms, campaign, given_name="Inès", family_name="Nouvelle")
    went = answer(client, page, action="skip")
    assert went.status_code == 303 and went.headers["Location"].endswith("/regles/1")
    assert db_session.scalars(select(Learner)).one().user_id is None
    assert db_session.scalars(select(LtiLearner)).one() is not None


def test_birth_date_guesses_are_limited(app, db_session, lms, world):
    _, campaign, _ = world
    client = app.test_client()
    page = first_launch(client, lms, campaign)
    statuses = [answer(client, page, day=str(day)).status_code for day in range(1, 8)]
    assert statuses == [400] * 5 + [429, 429]
    # A new launch does not bring new guesses.
    assert answer(client, first_launch(client, lms, campaign)).status_code == 429


def test_platforms_whose_names_are_not_declared_reliable_never_ask(app, db_session, lms, world):
    _, campaign, _ = world
    from lti_tool.models import LtiPlatform

    db_session.scalars(select(LtiPlatform)).one().match_learners = False
    db_session.commit()
    response = launch(app.test_client(), lms, custom={"campaign_code": campaign.code})
    assert response.headers["Location"].endswith("/regles/1")
    assert db_session.scalars(select(Learner)).one().user_id is None


def test_a_forged_or_expired_token_gets_a_clean_page(app, db_session, lms, world):
    _, campaign, _ = world
    client = app.test_client()
    assert client.get("/lti/rapprochement?t=forged").status_code == 400
    page = first_launch(client, lms, campaign)
    held = db_session.scalars(select(LtiPendingMatch)).one()
    held.expires_at = held.created_at - dt.timedelta(seconds=1)
    db_session.commit()
    expired = client.get(page)
    assert expired.status_code == 400 and "expiré" in expired.get_data(as_text=True)
    maintenance.purge(db_session)
    db_session.commit()
    assert count_pending(db_session) == 0


def test_the_birth_date_page_works_without_our_cookies(app, db_session, lms, world):
    """In an LMS frame that drops third-party cookies the token in the address is enough (it
    stands for the CSRF token), and a launch whose browser dropped our state cookie ends through
    the page that opens Parcours in its own tab."""
    _, campaign, _ = world
    client = app.test_client()
    page = first_launch(client, lms, campaign)
    held = db_session.scalars(select(LtiPendingMatch)).one()
    held.cookies, held.browser_hash = False, None  # as a launch without our cookies holds it
    db_session.commit()
    client._cookies.clear()
    data = {"t": page.split("t=")[1], "day": "14", "month": "3", "year": "2011"}
    response = client.post("/lti/rapprochement", data=data)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/lti/suite?")
    assert db_session.scalars(select(Learner)).one().user_id is not None


def test_an_account_matched_on_close_names_is_never_joined(app, db_session, lms, world):
    """A Moodle user renamed "Lea Martine" takes the learner on close names: the real Léa
    Martin arriving from the ENT is not handed that account."""
    _, campaign, idp = world
    moodle = app.test_client()
    page = first_launch(moodle, lms, campaign, given_name="Lea", family_name="Martine")
    assert answer(moodle, page).status_code == 303  # close names, nobody held it: linked
    owner = db_session.scalars(select(Learner)).one().user_id
    refused, _ = from_the_ent(app, idp)
    assert refused.status_code == 400 and "Aucun élève" in refused.get_data(as_text=True)
    assert identities(db_session, owner) == ["LTI"]


def test_a_staff_account_is_never_joined(app, db_session, lms, world):
    from campaigns.shared.models import Membership, MembershipRole

    organization, campaign, idp = world
    assert from_the_ent(app, idp)[0].status_code == 303
    owner = db_session.scalars(select(Learner)).one().user_id
    db_session.add(
        Membership(user_id=owner, organization_id=organization.id, role=MembershipRole.MEMBER)
    )
    db_session.commit()
    moodle = app.test_client()
    refused = answer(moodle, first_launch(moodle, lms, campaign))
    assert refused.status_code == 400
    assert identities(db_session, owner) == ["SAML"]


def test_a_failed_match_keeps_no_account(app, db_session, lms, world, monkeypatch):
    """A learner taken by a concurrent sign-in between the match and the link: the page says
    so, and neither an account nor the identity is left behind (the next try starts afresh)."""
    from campaigns import connectors
    from campaigns.orga import learner_match

    _, campaign, _ = world

    def taken(*args, **kwargs):
        raise connectors.LearnerTaken()

    monkeypatch.setattr(learner_match, "attach_learner", taken)
    before = users_count(db_session)
    client = app.test_client()
    page = first_launch(client, lms, campaign)
    assert answer(client, page).status_code == 400
    db_session.expire_all()
    assert users_count(db_session) == before
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(AuthenticationMethod)
            .where(AuthenticationMethod.provider == "LTI")
        )
        == 0
    )
    assert count_pending(db_session) == 1  # still there: the student may try again


def test_guesses_at_one_students_names_are_limited_across_accounts(app, db_session, lms, world):
    """Several LMS accounts bearing a classmate's names share one budget of guesses."""
    _, campaign, _ = world
    statuses = []
    for sub in ("copy-1", "copy-2", "copy-3"):
        client = app.test_client()
        page = first_launch(client, lms, campaign, sub=sub)
        statuses += [answer(client, page, day=str(day)).status_code for day in range(1, 5)]
    assert statuses == [400] * 10 + [429, 429]


def test_the_birth_date_page_belongs_to_the_browser_that_launched(app, db_session, lms, world):
    """When the browser keeps our cookies, a token sent to someone else (or read from another
    browser's history) opens nothing; the page is never cached."""
    _, campaign, _ = world
    client = app.test_client()
    page = first_launch(client, lms, campaign)
    shown = client.get(page)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    other = app.test_client()
    refused = other.get(page)
    assert refused.status_code == 400 and "autre navigateur" in refused.get_data(as_text=True)
    skipped = answer(other, page, action="skip")
    assert skipped.status_code == 400 and count_pending(db_session) == 1
    assert answer(client, page).status_code == 303  # the launching browser goes on
