"""The connector seam (`campaigns.connectors`): external sign-in, linking to the school, joining
a campaign, participation events — what the LTI tool and the SAML connector build on."""

import datetime as dt
import logging
import os
import threading

import pytest
from sqlalchemy import event, func, select

from campaigns import connectors
from campaigns.accounts import external, users
from campaigns.journey import services as journey
from campaigns.orga import campaign_admin
from campaigns.shared import events
from campaigns.shared.models import (
    AccountToken,
    AuthenticationMethod,
    AuthenticationProvider,
    CampaignType,
    ChallengeReport,
    Learner,
    Membership,
    MembershipRole,
    OrganizationType,
    Participation,
    ParticipationStatus,
    User,
)
from config.db import Database, utcnow
from config.migrations import upgrade
from config.settings import Settings
from tests.conftest import csrf_token
from tests.factories import organization_with_admin
from tests.journey_helpers import STUDENT_PASSWORD, assessment_campaign, school, student
from tests.orga_helpers import sign_in, take_test

ISSUER = "https://moodle.lycee.example"


def identity(sub="8f14e45f", **fields):
    fields.setdefault("first_name", "Léa")
    fields.setdefault("last_name", "Martin")
    return connectors.ExternalIdentity(
        provider=fields.pop("provider", AuthenticationProvider.LTI),
        issuer=fields.pop("issuer", ISSUER),
        external_id=sub,
        **fields,
    )


def methods_of(session, user):
    return session.scalars(
        select(AuthenticationMethod).where(AuthenticationMethod.user_id == user.id)
    ).all()


@pytest.fixture
def listening():
    """Subscribe listeners for one test only."""
    subscribed = []

    def on(kind, listener):
        connectors.subscribe(kind, listener)
        subscribed.append((kind, listener))

    yield on
    for kind, listener in subscribed:
        connectors.unsubscribe(kind, listener)


# -- external sign-in -----------------------------------------------------------------------------


def test_the_first_sign_in_creates_the_user_and_the_next_ones_find_it(db_session):
    first = connectors.sign_in_external(
        db_session, identity(email="lea@lycee.example", attributes={"roles": ["Learner"]})
    )
    assert (first.first_name, first.last_name, first.email) == ("Léa", "Martin", None)
    [method] = methods_of(db_session, first)
    assert (method.provider, method.issuer, method.external_id) == (
        AuthenticationProvider.LTI,
        ISSUER,
        "8f14e45f",
    )
    assert method.attributes == {
        "roles": ["Learner"],
        "first_name": "Léa",
        "last_name": "Martin",
        "email": "lea@lycee.example",
    }
    assert method.password_hash is None and first.last_signed_in_at is not None

    again = connectors.sign_in_external(
        db_session,
        identity(first_name="Léa-Rose", last_name="", attributes={"roles": ["Instructor"]}),
    )
    assert again.id == first.id
    assert (again.first_name, again.last_name) == ("Léa-Rose", "Martin")  # empty: kept
    assert methods_of(db_session, again)[0].attributes["roles"] == ["Instructor"]
    assert db_session.scalar(select(func.count()).select_from(User)) == 1


def test_the_same_id_from_another_issuer_or_provider_is_another_person(db_session):
    lms = connectors.sign_in_external(db_session, identity())
    other_lms = connectors.sign_in_external(db_session, identity(issuer="https://canvas.example"))
    ent = connectors.sign_in_external(
        db_session, identity(provider=AuthenticationProvider.SAML, issuer="gar")
    )
    assert len({lms.id, other_lms.id, ent.id}) == 3


def test_an_identity_is_never_merged_with_an_account_by_its_email(db_session):
    owner = users.create_user(
        db_session,
        first_name="Léa",
        last_name="Martin",
        email="lea@lycee.example",
        password="Un-mot-de-passe-1",
    )
    owner.email_verified_at = utcnow()
    arrived = connectors.sign_in_external(
        db_session, identity(email="LEA@lycee.example", email_verified=True)
    )
    assert arrived.id != owner.id
    assert arrived.email is None  # the address is someone else's: never taken
    assert [m.provider for m in methods_of(db_session, owner)] == [AuthenticationProvider.PASSWORD]


def test_a_vouched_address_is_taken_only_when_free_and_never_over_a_password_login(db_session):
    unvouched = connectors.sign_in_external(db_session, identity("a", email="a@academie.fr"))
    assert unvouched.email is None  # an LMS passes on what its users typed: kept as read only
    assert methods_of(db_session, unvouched)[0].attributes["email"] == "a@academie.fr"

    teacher = connectors.sign_in_external(
        db_session, identity("b", email="B.Prof@Academie.fr", email_verified=True)
    )
    assert teacher.email == "b.prof@academie.fr" and teacher.email_proven
    moved = connectors.sign_in_external(
        db_session, identity("b", email="b.prof@ac-lyon.fr", email_verified=True)
    )
    assert moved.email == "b.prof@ac-lyon.fr"  # no password login: follows the academy

    users.set_password(db_session, teacher, "Un-mot-de-passe-1")
    teacher.email = "perso@example.org"  # the owner chose the address they sign in with
    db_session.flush()
    connectors.sign_in_external(
        db_session, identity("b", email="b.prof@ac-lyon.fr", email_verified=True)
    )
    assert teacher.email == "perso@example.org"

    malformed = connectors.sign_in_external(
        db_session, identity("c", email="pas une adresse", email_verified=True)
    )
    assert malformed.email is None


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"provider": AuthenticationProvider.PASSWORD}, "provider"),
        ({"issuer": "  "}, "identity"),
        ({"sub": ""}, "identity"),
        ({"sub": "x" * 513}, "identity"),
    ],
)
def test_a_malformed_identity_is_refused(db_session, fields, code):
    with pytest.raises(connectors.InvalidInput) as refused:
        connectors.sign_in_external(db_session, identity(**fields))
    assert refused.value.code == code
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


def test_logs_name_an_identity_by_a_hash_never_by_its_id(db_session):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("campaigns.accounts.external")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        connectors.sign_in_external(db_session, identity("eleve-7f3a9c"))
        connectors.sign_in_external(db_session, identity("eleve-7f3a9c"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    lines = [record.getMessage() for record in records]
    assert len(lines) == 2 and "created" in lines[0] and "known" in lines[1]
    ref = connectors.identity_ref(ISSUER, "eleve-7f3a9c")
    assert all(ref in line and "eleve-7f3a9c" not in line for line in lines)
    assert ref != connectors.identity_ref("https://autre.example", "eleve-7f3a9c")


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="concurrent writers are PostgreSQL's"
)
def test_two_first_sign_ins_at_once_make_one_user(scratch_databases, monkeypatch):
    database = Database(Settings(database_url=scratch_databases.new("connectors")))
    upgrade(database)
    both_looked = threading.Barrier(2, timeout=10)
    looked: set[int] = set()
    find = external._find

    def find_then_wait(session, who):
        found = find(session, who)
        if threading.get_ident() not in looked:  # both threads saw nobody before creating
            looked.add(threading.get_ident())
            both_looked.wait()
        return found

    monkeypatch.setattr(external, "_find", find_then_wait)
    made: list[int] = []
    failures: list[BaseException] = []

    def first_launch() -> None:
        try:
            with database.session() as session:
                user = connectors.sign_in_external(session, identity(first_name="Inès"))
                session.commit()
                made.append(user.id)
        except BaseException as error:  # reported below
            failures.append(error)

    try:
        threads = [threading.Thread(target=first_launch) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        assert len(made) == 2 and made[0] == made[1]
        with database.session() as session:
            assert session.scalar(select(func.count()).select_from(User)) == 1
            assert session.scalar(select(func.count()).select_from(AuthenticationMethod)) == 1
    finally:
        database.dispose()


def test_the_connector_signs_the_user_in_with_a_fresh_session(app, db_session):
    user = connectors.sign_in_external(db_session, identity())
    db_session.commit()
    with app.test_request_context("/"):
        from flask import session as cookie

        cookie["sid"] = "a-token-an-attacker-planted"
        connectors.start_session(user)
        assert cookie["sid"] != "a-token-an-attacker-planted"
        assert connectors.current_user().id == user.id


# -- linking to the school ------------------------------------------------------------------------


def _learner(session, organization, n=1):
    learner = Learner(
        organization_id=organization.id, first_name="Inès", last_name=f"Durand{n}", division="3e A"
    )
    session.add(learner)
    session.flush()
    return learner


def test_a_learner_belongs_to_one_user(db_session):
    organization, _ = school(db_session)
    learner = _learner(db_session, organization)
    pupil = connectors.sign_in_external(db_session, identity("pupil"))
    assert (
        connectors.attach_learner(db_session, organization, learner.id, pupil).user_id == pupil.id
    )
    assert connectors.attach_learner(db_session, organization, learner.id, pupil) is learner

    other = connectors.sign_in_external(db_session, identity("someone-else"))
    with pytest.raises(connectors.LearnerTaken) as taken:
        connectors.attach_learner(db_session, organization, learner.id, other)
    assert taken.value.code == "learner_taken"
    db_session.refresh(learner)
    assert learner.user_id == pupil.id

    second = _learner(db_session, organization, 2)
    with pytest.raises(connectors.AlreadyLinked):
        connectors.attach_learner(db_session, organization, second.id, pupil)
    assert second.user_id is None


def test_only_a_live_learner_of_the_organization_is_linked(db_session):
    organization, _ = school(db_session)
    elsewhere, _ = school(db_session, uai="0690001B")
    theirs = _learner(db_session, elsewhere)
    pupil = connectors.sign_in_external(db_session, identity())
    with pytest.raises(connectors.ServiceError) as unknown:
        connectors.attach_learner(db_session, organization, theirs.id, pupil)
    assert unknown.value.code == "unknown_learner"
    gone = _learner(db_session, organization)
    gone.is_disabled = True
    with pytest.raises(connectors.ServiceError):
        connectors.attach_learner(db_session, organization, gone.id, pupil)
    assert theirs.user_id is None and gone.user_id is None


def test_an_unproven_address_receives_no_learner_link(db_session):
    organization, _ = school(db_session)
    learner = _learner(db_session, organization)
    signed_up = student(db_session)  # typed their own address, never confirmed it
    with pytest.raises(connectors.EmailNotProven):
        connectors.attach_learner(db_session, organization, learner.id, signed_up)
    assert learner.user_id is None


def test_a_teacher_from_a_connector_becomes_member_never_admin(db_session):
    created = organization_with_admin(
        db_session, name="Lycée", type=OrganizationType.SCO, uai="0750102B", admin_email="d@x.fr"
    )
    teacher = connectors.sign_in_external(db_session, identity("prof"))
    assert connectors.ensure_member(db_session, created.organization, teacher) is (
        MembershipRole.MEMBER
    )
    assert connectors.ensure_member(db_session, created.organization, teacher) is (
        MembershipRole.MEMBER
    )
    assert connectors.ensure_member(db_session, created.organization, created.admin) is (
        MembershipRole.ADMIN  # an admin arriving through a connector stays admin
    )
    roles = db_session.scalars(
        select(Membership.role).where(Membership.organization_id == created.organization.id)
    ).all()
    assert sorted(roles) == [MembershipRole.ADMIN, MembershipRole.MEMBER]

    created.organization.archived_at = utcnow()
    late = connectors.sign_in_external(db_session, identity("late"))
    with pytest.raises(connectors.ServiceError) as archived:
        connectors.ensure_member(db_session, created.organization, late)
    assert archived.value.code == "archived"


# -- joining a campaign ---------------------------------------------------------------------------


def test_entering_a_campaign_lands_where_the_journey_would(app, db_session):
    organization, teacher = school(db_session)
    first = assessment_campaign(db_session, organization, teacher)
    second = assessment_campaign(db_session, organization, teacher, name="Deuxième")
    pupil = connectors.sign_in_external(db_session, identity())
    with app.test_request_context("/"):
        entry = connectors.enter_campaign(db_session, pupil, first.code.lower())
        assert entry.page is connectors.NextPage.RULES  # a first participation ever
        assert entry.url == f"/campagnes/{first.code}/regles/1"
        assert entry.participation.status is ParticipationStatus.STARTED
        again = connectors.enter_campaign(db_session, pupil, first.code)
        assert again.participation.id == entry.participation.id
        assert again.page is connectors.NextPage.QUESTION
        assert connectors.enter_campaign(db_session, pupil, second.code).url == (
            f"/campagnes/{second.code}/evaluation"
        )

        take_test(db_session, first, pupil, share=False)
        assert connectors.enter_campaign(db_session, pupil, first.code).page is (
            connectors.NextPage.RESULTS
        )


def test_entering_follows_the_campaign_rules(app, db_session):
    organization, teacher = school(db_session)
    asks_id = assessment_campaign(db_session, organization, teacher, external_id_label="N° élève")
    collection = campaign_admin.create_campaign(
        db_session,
        organization=organization,
        creator=teacher,
        name="Collecte",
        type=CampaignType.PROFILES_COLLECTION,
    )
    archived = assessment_campaign(db_session, organization, teacher, name="Ancien")
    archived.archived_at = utcnow()
    pupil = connectors.sign_in_external(db_session, identity())
    with app.test_request_context("/"):
        entry = connectors.enter_campaign(db_session, pupil, asks_id.code)
        assert entry.participation is None and entry.page is connectors.NextPage.EXTERNAL_ID
        assert entry.url == f"/campagnes/{asks_id.code}/identifiant"
        assert connectors.enter_campaign(db_session, pupil, collection.code).url == (
            f"/campagnes/{collection.code}/profil"
        )
        with pytest.raises(connectors.NotAllowed) as refused:
            connectors.enter_campaign(db_session, pupil, archived.code)
        assert refused.value.code == "archived"
        for code in ("ZZZZZZ999", "pas un code", ""):
            with pytest.raises(connectors.NotFound):
                connectors.enter_campaign(db_session, pupil, code)
    assert (
        db_session.scalar(
            select(func.count()).select_from(Participation).where(Participation.user_id == pupil.id)
        )
        == 1
    )


# -- participation events -------------------------------------------------------------------------


def _statements(session):
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", record)


def test_a_share_calls_each_listener_once_in_its_transaction(db_session, listening):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    pupil = student(db_session)
    calls = []

    def queue_grade(session, participation):
        assert session is db_session  # the share's own transaction
        assert participation.status is ParticipationStatus.SHARED
        assert participation.shared_results is not None
        calls.append(participation.id)
        session.add(  # a row written by the listener lands with the share
            ChallengeReport(
                user_id=participation.user_id,
                challenge_id="grade-queued",
                category="autre",
            )
        )

    listening(connectors.Event.SHARED, queue_grade)
    listening(connectors.Event.SHARED, queue_grade)  # subscribing twice still calls once
    participation = take_test(db_session, campaign, pupil, share=False)
    journey.share(db_session, participation)
    journey.share(db_session, participation)  # idempotent: nobody called twice
    assert calls == [participation.id]
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(ChallengeReport)
            .where(ChallengeReport.challenge_id == "grade-queued")
        )
        == 1
    )


def test_a_failing_listener_leaves_the_participation_unshared(db_session, listening):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    participation = take_test(db_session, campaign, student(db_session), share=False)

    def lms_refuses(session, shared):
        raise RuntimeError("the grade queue is full")

    listening(connectors.Event.SHARED, lms_refuses)
    with pytest.raises(connectors.ListenerFailed) as failed:
        journey.share(db_session, participation)
    assert isinstance(failed.value.__cause__, RuntimeError)
    # Nothing half-done, in memory or in the database, even for a caller that commits anyway.
    assert participation.status is ParticipationStatus.TO_SHARE
    assert participation.shared_at is None and participation.shared_results is None
    db_session.commit()
    db_session.expire_all()
    assert participation.status is ParticipationStatus.TO_SHARE
    connectors.unsubscribe(connectors.Event.SHARED, lms_refuses)
    journey.share(db_session, participation)  # the LMS is back: the same session shares
    assert participation.status is ParticipationStatus.SHARED


def test_a_failing_start_listener_on_a_retry_keeps_the_shared_participation(db_session, listening):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher, multiple_sendings=True)
    pupil = student(db_session)
    shared = take_test(db_session, campaign, pupil, success=0.5)
    shared.shared_at = utcnow() - journey.RETRY_AFTER - dt.timedelta(minutes=1)
    db_session.flush()

    def refuse(session, participation):
        raise RuntimeError("no")

    listening(connectors.Event.STARTED, refuse)
    with pytest.raises(connectors.ListenerFailed):
        journey.retry(db_session, shared, campaign, reset=True)
    db_session.commit()
    db_session.expire_all()
    assert journey.live_participation(db_session, campaign, pupil).id == shared.id
    assert not shared.is_improved


def test_without_listeners_a_share_costs_no_extra_statement(db_session, listening, monkeypatch):
    monkeypatch.setitem(events._listeners, connectors.Event.SHARED, ())  # the app's own aside
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    quiet = take_test(db_session, campaign, student(db_session, 1), share=False)
    heard = take_test(db_session, campaign, student(db_session, 2), share=False)
    db_session.flush()

    seen, stop = _statements(db_session)
    journey.share(db_session, quiet)
    without = list(seen)
    seen.clear()
    listening(connectors.Event.SHARED, lambda session, participation: None)
    journey.share(db_session, heard)
    stop()
    assert not any("SAVEPOINT" in statement for statement in without)
    assert any("SAVEPOINT" in statement for statement in seen)
    assert len(seen) == len(without) + 2  # the savepoint and its release: nothing else


def test_a_start_is_published_and_a_failing_listener_starts_nothing(db_session, listening):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    started, held = [], []

    def note(session, participation):
        started.append(participation.id)
        held.append(participation in session)  # listeners may use the session's object

    listening(connectors.Event.STARTED, note)
    first = journey.join(db_session, campaign, student(db_session, 1))
    journey.join(db_session, campaign, session_user := db_session.get(User, first.user_id))
    assert started == [first.id] and held == [True] and session_user.id == first.user_id

    refused = []

    def refuse(session, participation):
        refused.append(participation)
        raise ValueError("no")

    listening(connectors.Event.STARTED, refuse)
    late = student(db_session, 2)
    with pytest.raises(connectors.ListenerFailed):
        journey.join(db_session, campaign, late)
    assert journey.live_participation(db_session, campaign, late) is None
    assert refused and refused[0] not in db_session  # the session lets go of the undone row


def test_the_student_sees_a_clear_page_when_a_listener_fails(client, db_session, listening):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    pupil = student(db_session)
    take_test(db_session, campaign, pupil, share=False)
    db_session.commit()

    def refuse(session, participation):
        raise RuntimeError("down")

    listening(connectors.Event.SHARED, refuse)
    sign_in(client, pupil.email, STUDENT_PASSWORD)
    path = f"/campagnes/{campaign.code}"
    token = csrf_token(client, f"{path}/resultats")
    response = client.post(f"{path}/envoi", data={"csrf_token": token})
    assert response.status_code == 503
    assert "Rien n’a été modifié" in response.get_data(as_text=True)
    participation = db_session.scalars(
        select(Participation).where(Participation.user_id == pupil.id)
    ).one()
    db_session.refresh(participation)
    assert participation.status is ParticipationStatus.TO_SHARE


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="concurrent writers are PostgreSQL's"
)
def test_two_shares_at_once_call_the_listeners_once(scratch_databases):
    database = Database(Settings(database_url=scratch_databases.new("shares")))
    upgrade(database)
    with database.session() as session, session.begin():
        organization, teacher = school(session)
        campaign = assessment_campaign(session, organization, teacher)
        participation_id = take_test(session, campaign, student(session), share=False).id
    calls: list[int] = []
    both_read = threading.Barrier(2, timeout=10)

    def count(session, participation):
        calls.append(participation.id)

    def share() -> None:
        with database.session() as session:
            participation = session.get(Participation, participation_id)
            assert participation.status is ParticipationStatus.TO_SHARE
            both_read.wait()  # both saw it unshared before either shares
            journey.share(session, participation)
            session.commit()

    connectors.subscribe(connectors.Event.SHARED, count)
    try:
        threads = [threading.Thread(target=share) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert calls == [participation_id]
    finally:
        connectors.unsubscribe(connectors.Event.SHARED, count)
        database.dispose()


def test_padded_ids_are_the_same_identity(db_session):
    first = connectors.sign_in_external(db_session, identity("abc"))
    assert connectors.sign_in_external(db_session, identity("  abc ")).id == first.id
    assert connectors.sign_in_external(db_session, identity("abc", issuer=f" {ISSUER} ")).id == (
        first.id
    )


def test_names_changed_in_parcours_are_not_overwritten(db_session):
    user = connectors.sign_in_external(db_session, identity(first_name="Lea"))
    user.first_name = "Léa"  # corrected by its owner
    connectors.sign_in_external(db_session, identity(first_name="Lea", last_name="Martin-Roy"))
    assert (user.first_name, user.last_name) == ("Léa", "Martin-Roy")


def test_a_password_reset_never_adds_a_password_to_a_connector_account(app, db_session):
    """An identity provider that asserts someone's address gives its account that address; the
    owner of the mailbox cannot then take the account over by "mot de passe oublié" (it would
    be shared with whoever signs in through the provider)."""
    from campaigns.accounts import links

    user = connectors.sign_in_external(
        db_session, identity("t", email="prof@academie.fr", email_verified=True)
    )
    assert user.email == "prof@academie.fr"
    links.request_password_reset(db_session, "prof@academie.fr", "http://127.0.0.1:5000")
    assert (
        db_session.scalar(
            select(func.count()).select_from(AccountToken).where(AccountToken.user_id == user.id)
        )
        == 0
    )


def test_linking_a_learner_counts_the_participations_already_started(app, db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher)
    pupil = connectors.sign_in_external(db_session, identity())
    with app.test_request_context("/"):
        entry = connectors.enter_campaign(db_session, pupil, campaign.code)
    assert entry.participation.learner_id is None
    learner = _learner(db_session, organization)
    connectors.attach_learner(db_session, organization, learner.id, pupil)
    db_session.refresh(entry.participation)
    assert entry.participation.learner_id == learner.id


def test_a_connector_may_give_the_identifier_the_campaign_asks_for(app, db_session):
    organization, teacher = school(db_session)
    campaign = assessment_campaign(db_session, organization, teacher, external_id_label="N° ENT")
    pupil = connectors.sign_in_external(db_session, identity())
    with app.test_request_context("/"):
        entry = connectors.enter_campaign(db_session, pupil, campaign.code, external_id="ent-42")
    assert entry.page is connectors.NextPage.RULES
    assert entry.participation.participant_external_id == "ent-42"


def test_identity_refs_are_keyed_with_the_instance_secret():
    from campaigns.accounts.external import set_identity_key
    from tests.conftest import TEST_SECRET

    try:
        set_identity_key("another-instance-secret")
        elsewhere = connectors.identity_ref(ISSUER, "jean.dupont@univ.example")
        set_identity_key(TEST_SECRET)
        here = connectors.identity_ref(ISSUER, "jean.dupont@univ.example")
        assert here != elsewhere  # a guessed id cannot be confirmed without the secret
        assert here == connectors.identity_ref(ISSUER, "jean.dupont@univ.example")  # stable
        assert len(here) == 16 and "dupont" not in here
    finally:
        set_identity_key(TEST_SECRET)
