"""The invariants concurrency could break are database constraints: a second writer fails."""

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from campaigns.shared.models import (
    Answer,
    AnswerResult,
    AssessmentState,
    AuthenticationMethod,
    AuthenticationProvider,
    CampaignType,
    KnowledgeElement,
    KnowledgeElementSource,
    KnowledgeElementStatus,
    Learner,
    Membership,
    MembershipRole,
    Organization,
    OrganizationType,
    ParticipationStatus,
    User,
)
from config.db import insert_row
from tests import factories


def violates(session, *rows):
    """Adding these rows breaks a database constraint (and the session stays usable)."""
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add_all(rows)
        session.flush()
    return True


def test_one_live_participation_per_user_and_campaign(db_session):
    campaign = factories.campaign(db_session)
    student = factories.user(db_session)
    first = factories.participation(db_session, campaign, student)
    from campaigns.shared.models import Participation

    twin = Participation(
        campaign_id=campaign.id, user_id=student.id, status=ParticipationStatus.STARTED
    )
    assert violates(db_session, twin)
    # With multiple sendings, the old one is kept as "improved" and a new one may start.
    first.is_improved = True
    db_session.flush()
    factories.participation(db_session, campaign, student)


def test_shared_date_matches_the_status(db_session):
    campaign = factories.campaign(db_session)
    student = factories.user(db_session)
    participation = factories.participation(db_session, campaign, student)
    participation.status = ParticipationStatus.SHARED
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.flush()
    participation.shared_at = dt.datetime.now(dt.UTC)
    participation.mastery_rate = Decimal("0.6250")
    db_session.flush()


def test_one_started_assessment_per_participation(db_session):
    campaign = factories.campaign(db_session)
    participation = factories.participation(db_session, campaign, factories.user(db_session))
    first = factories.assessment(db_session, participation)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        factories.assessment(db_session, participation)
    first.state = AssessmentState.COMPLETED
    db_session.flush()
    factories.assessment(db_session, participation)


def test_a_double_submitted_answer_is_stored_once(db_session):
    campaign = factories.campaign(db_session)
    participation = factories.participation(db_session, campaign, factories.user(db_session))
    assessment = factories.assessment(db_session, participation)
    answer = dict(assessment_id=assessment.id, challenge_id="rec123", value="B")
    db_session.add(Answer(**answer, result=AnswerResult.OK))
    db_session.flush()
    assert violates(db_session, Answer(**answer, result=AnswerResult.OK))


def test_one_knowledge_element_per_skill_per_assessment(db_session):
    campaign = factories.campaign(db_session)
    student = factories.user(db_session)
    participation = factories.participation(db_session, campaign, student)
    assessment = factories.assessment(db_session, participation)

    def element(**fields):
        values = dict(
            user_id=student.id,
            assessment_id=assessment.id,
            skill_id="@recherche2",
            tube_id="@recherche",
            competence_id="1.1",
            status=KnowledgeElementStatus.VALIDATED,
            source=KnowledgeElementSource.DIRECT,
            earned_pix=Decimal(4),
        )
        values.update(fields)
        return KnowledgeElement(**values)

    db_session.add(element())
    db_session.flush()
    assert violates(db_session, element(source=KnowledgeElementSource.INFERRED))
    assert violates(
        db_session,
        element(skill_id="@recherche3", status=KnowledgeElementStatus.INVALIDATED),
    )  # an invalidated skill earns no pix


def test_campaign_codes_are_unique_and_well_formed(db_session):
    campaign = factories.campaign(db_session)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        factories.campaign(db_session, code=campaign.code)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        factories.campaign(db_session, code="abc")


def test_assessment_campaigns_need_a_target_profile_and_collections_none(db_session):
    with pytest.raises(IntegrityError), db_session.begin_nested():
        factories.campaign(db_session, target_profile_id=None)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        factories.campaign(db_session, type=CampaignType.PROFILES_COLLECTION)
    collection = factories.campaign(
        db_session, type=CampaignType.PROFILES_COLLECTION, target_profile_id=None
    )
    assert collection.id


def test_landing_text_is_capped_at_5000_characters(db_session):
    factories.campaign(db_session, landing_text="a" * 5000)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        factories.campaign(db_session, landing_text="a" * 5001)


def test_uai_is_unique_and_only_for_schools(db_session):
    factories.organization(db_session, uai="0999001B")
    assert violates(
        db_session, Organization(name="Autre", type=OrganizationType.SCO, uai="0999001B")
    )
    assert violates(
        db_session, Organization(name="Entreprise", type=OrganizationType.PRO, uai="0999002C")
    )


def test_one_membership_per_person_and_organization(db_session):
    organization = factories.organization(db_session)
    member = factories.user(db_session)
    db_session.add(Membership(organization_id=organization.id, user_id=member.id, role="MEMBER"))
    db_session.flush()
    assert violates(
        db_session,
        Membership(organization_id=organization.id, user_id=member.id, role=MembershipRole.ADMIN),
    )


def test_a_learner_is_linked_at_most_once_to_a_user_per_organization(db_session):
    organization = factories.organization(db_session)
    student = factories.user(db_session)

    def learner(**fields):
        return Learner(
            organization_id=organization.id,
            first_name="Léa",
            last_name="Bernard",
            birthdate=dt.date(2011, 3, 14),
            **fields,
        )

    db_session.add_all([learner(user_id=student.id), learner(), learner()])
    db_session.flush()  # several unlinked learners are fine
    assert violates(db_session, learner(user_id=student.id))
    other = factories.organization(db_session)
    db_session.add(
        Learner(organization_id=other.id, first_name="Léa", last_name="B", user_id=student.id)
    )
    db_session.flush()  # the same student in another school is fine


def test_a_login_identity_belongs_to_one_user(db_session):
    alice, bob = factories.user(db_session), factories.user(db_session)

    def lti(user):
        return AuthenticationMethod(
            user_id=user.id,
            provider=AuthenticationProvider.LTI,
            issuer="https://moodle.example",
            external_id="sub-42",
        )

    db_session.add(lti(alice))
    db_session.flush()
    assert violates(db_session, lti(bob))


def test_one_password_per_user_and_credentials_match_the_provider(db_session):
    user = factories.user(db_session)

    def password():
        return AuthenticationMethod(
            user_id=user.id, provider=AuthenticationProvider.PASSWORD, password_hash="$argon2id$x"
        )

    db_session.add(password())
    db_session.flush()
    assert violates(db_session, password())
    assert violates(
        db_session,
        AuthenticationMethod(user_id=user.id, provider=AuthenticationProvider.SAML, issuer="gar"),
    )  # an SSO identity needs its external id


def test_two_users_cannot_share_an_email(db_session):
    factories.user(db_session, email="same@example.org")
    assert violates(db_session, User(first_name="A", last_name="B", email="same@example.org"))
    assert violates(db_session, User(first_name="A", last_name="B", email="UPPER@example.org"))


def test_timestamps_are_timezone_aware_utc(db_session):
    paris = dt.timezone(dt.timedelta(hours=1))
    created = dt.datetime(2026, 9, 1, 8, 30, tzinfo=paris)
    user = factories.user(db_session, created_at=created)
    db_session.expire_all()
    stored = db_session.scalars(select(User).where(User.id == user.id)).one().created_at
    assert stored == created
    assert stored.tzinfo == dt.UTC
    assert stored.hour == 7


def test_naive_timestamps_are_refused(db_session):
    with pytest.raises(StatementError, match="naive datetime"), db_session.begin_nested():
        factories.user(db_session, created_at=dt.datetime(2026, 9, 1, 8, 30))  # noqa: DTZ001


def test_enums_refuse_unknown_values(db_session):
    with pytest.raises(StatementError), db_session.begin_nested():
        factories.campaign(db_session, type="EXAM")


def test_a_deleted_participation_does_not_block_a_new_one(db_session):
    campaign = factories.campaign(db_session)
    student = factories.user(db_session)
    first = factories.participation(db_session, campaign, student)
    first.deleted_at = dt.datetime.now(dt.UTC)
    db_session.flush()
    factories.participation(db_session, campaign, student)


def test_one_live_participation_per_school_learner_whichever_account(db_session):
    from campaigns.shared.models import Participation

    campaign = factories.campaign(db_session)
    learner = Learner(organization_id=campaign.organization_id, first_name="Léa", last_name="B")
    db_session.add(learner)
    db_session.flush()
    factories.participation(db_session, campaign, factories.user(db_session), learner_id=learner.id)
    other_account = factories.user(db_session)
    assert violates(
        db_session,
        Participation(
            campaign_id=campaign.id,
            user_id=other_account.id,
            learner_id=learner.id,
            status=ParticipationStatus.STARTED,
        ),
    )


def test_a_username_cannot_look_like_an_email(db_session):
    assert violates(db_session, User(first_name="A", last_name="B", username="lea@example.org"))
    assert violates(db_session, User(first_name="A", last_name="B", username="Lea.Bernard"))


def test_the_database_itself_refuses_unknown_enum_values(db_session):
    from sqlalchemy import text

    organization = factories.organization(db_session)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.execute(
            text(
                "INSERT INTO memberships (organization_id, user_id, role, created_at)"
                " VALUES (:org, :user, 'OWNER', CURRENT_TIMESTAMP)"
            ),
            {"org": organization.id, "user": factories.user(db_session).id},
        )


def test_a_row_written_by_a_core_insert_is_held_as_it_is_stored(db_session):
    organization = factories.organization(db_session)
    db_session.flush()
    now = dt.datetime.now(dt.UTC)
    values = {"organization_id": organization.id, "first_name": "Léa", "last_name": "Martin"}
    learner = insert_row(db_session, Learner, values | {"created_at": now, "updated_at": now})
    held = {name: getattr(learner, name) for name in ("user_id", "division", "is_disabled")}
    db_session.expire_all()
    stored = db_session.get(Learner, learner.id)
    assert held == {"user_id": None, "division": None, "is_disabled": False}
    assert held == {name: getattr(stored, name) for name in held}


class _Scratch(DeclarativeBase):
    pass


class _Seen(_Scratch):
    __tablename__ = "seen"
    id: Mapped[int] = mapped_column(primary_key=True)
    seen_at: Mapped[dt.datetime | None] = mapped_column(default=lambda: dt.datetime.now(dt.UTC))


def test_a_column_computed_per_row_must_be_given_to_a_core_insert(db_session):
    with pytest.raises(ValueError, match=r"_Seen\.seen_at must be given"):
        insert_row(db_session, _Seen, {})
