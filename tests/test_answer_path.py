"""The answer path's budget: the statements (SQLite) and round trips (PostgreSQL) an answer costs,
measured on a database of its own (the suite's other tests share one transaction, whose
savepoints would be counted), and how it survives a connection the database dropped."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from sqlalchemy import event, select, text

from bench.http_answers import CHALLENGE, CSRF, answer_form
from bench.round_trips import count_round_trips, counts
from config.app import create_app
from config.db import Database
from config.migrations import upgrade
from config.settings import Settings
from engine.content import load_pack
from tests.conftest import TEST_SECRET, csrf_token, recorded_statements
from tests.journey_helpers import STUDENT_PASSWORD, assessment_campaign, school, student

# Per answer on PostgreSQL: the POST (BEGIN, who and where, answers and knowledge, the answer,
# its knowledge, the test's new state, COMMIT), the next question (one read, no transaction)
# and every fifth answer a checkpoint (two reads).
POST_ROUND_TRIPS = 7
ROUND_TRIPS_PER_ANSWER = 9
POST_STATEMENTS = 5  # SQLite: the same statements (BEGIN aside)


def _statements(sent: list[str]) -> int:
    return sum(1 for statement in sent if not statement.startswith("BEGIN"))


@pytest.fixture(scope="module")
def own(scratch_databases) -> Iterator[tuple[Database, str]]:
    settings = Settings(
        database_url=scratch_databases.new("answer_path"),
        secret_key=TEST_SECRET,
        public_url="http://127.0.0.1:5000",
        env="development",
        testing=True,
    )
    database = Database(settings)
    if scratch_databases.kind == "postgresql":
        count_round_trips(database.engine)
    upgrade(database)
    with database.session() as session, session.begin():
        organization, teacher = school(session)
        campaign = assessment_campaign(session, organization, teacher, key="tp-cycle4")
        for n in range(1, 5):
            student(session, n)
        code = campaign.code
    yield database, code, settings
    database.dispose()


def _started(own, n: int):
    database, code, settings = own
    client = create_app(settings, database=database).test_client()
    data = {"login": f"eleve{n}@example.org", "password": STUDENT_PASSWORD,
            "csrf_token": csrf_token(client, "/connexion")}  # fmt: skip
    assert client.post("/connexion", data=data).status_code == 302
    token = csrf_token(client, f"/campagnes/{code}")
    client.post(f"/campagnes/{code}/commencer", data={"csrf_token": token})
    return client, code


def _answer(client, code: str, page: str, rng: random.Random, pack):
    challenge = pack.challenge_by_id[CHALLENGE.search(page).group(1)]
    form, _ = answer_form(challenge, right=rng.random() < 0.7)
    form["csrf_token"] = CSRF.search(page).group(1)
    return challenge, client.post(f"/campagnes/{code}/evaluation", data=form)


def test_an_answer_costs_its_budget_of_round_trips_and_statements(own, scratch_databases):
    client, code = _started(own, 1)
    database = own[0]
    pack, rng = load_pack(), random.Random(1)
    postgresql = scratch_databases.kind == "postgresql"
    page = client.get(f"/campagnes/{code}/evaluation").get_data(as_text=True)  # prepares, opens
    answered, total, checkpoints = 0, 0, 0
    while answered < 12 and CHALLENGE.search(page):
        counts.reset()
        with recorded_statements(database.engine) as statements:
            _, posted = _answer(client, code, page, rng, pack)
        assert posted.status_code == 302 and "Set-Cookie" not in posted.headers
        if postgresql:
            sent = counts.totals()
            posted_trips = sent["POST journey.question"]
            # (the connection's first answer also prepares its three statements: once)
            assert posted_trips <= POST_ROUND_TRIPS + 3 * (answered == 0), sent
        else:
            assert _statements(statements) <= POST_STATEMENTS, statements
        counts.reset()
        with recorded_statements(database.engine) as statements:
            shown = client.get(posted.headers["Location"])
            page = shown.get_data(as_text=True)
            if "/checkpoint" in posted.headers["Location"] and "/resultats" not in page:
                shown = client.get(f"/campagnes/{code}/evaluation")
                page = shown.get_data(as_text=True)
        assert shown.status_code == 200 and "Set-Cookie" not in shown.headers
        timed = "data-deadline-seconds" in page  # its clock starts: one write
        if postgresql:
            sent = counts.totals()
            # (a connection's first checkpoint also prepares its statement: once)
            assert sent["GET journey.checkpoint"] <= 2 + (checkpoints == 0), sent
            checkpoints += sent["GET journey.checkpoint"] > 0
            assert sent["GET journey.question"] <= (4 if timed else 1), sent
            total += posted_trips + sent["GET journey.question"] + sent["GET journey.checkpoint"]
        else:
            checkpoint = "/checkpoint" in posted.headers["Location"]
            assert _statements(statements) <= 1 + timed + 2 * checkpoint, statements
        answered += 1
    assert answered == 12
    if postgresql:
        assert total / answered <= ROUND_TRIPS_PER_ANSWER


@pytest.fixture
def postgresql_only(scratch_databases):
    if scratch_databases.kind != "postgresql":
        pytest.skip("dropped connections are PostgreSQL's")


def _drop_connections(database: Database) -> None:
    """What a database restart does to the pool: every connection of the app is gone."""
    admin = database.engine.url
    from sqlalchemy import create_engine

    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    engine.dispose()


@pytest.fixture
def errors(own) -> Iterator[list[object]]:
    """The statements that failed on the app's engine."""
    found: list[object] = []
    listener = found.append
    event.listen(own[0].engine, "handle_error", listener)
    yield found
    event.remove(own[0].engine, "handle_error", listener)


def test_a_connection_dropped_while_busy_is_replaced_and_the_read_tried_again(
    own, postgresql_only, errors
):
    client, code = _started(own, 2)
    assert client.get(f"/campagnes/{code}/evaluation").status_code == 200
    _drop_connections(own[0])
    page = client.get(f"/campagnes/{code}/evaluation")  # not idle: no ping, the read fails once
    assert page.status_code == 200 and CHALLENGE.search(page.get_data(as_text=True))
    assert len(errors) == 1
    _drop_connections(own[0])
    _, posted = _answer(client, code, page.get_data(as_text=True), random.Random(2),
                                load_pack())  # fmt: skip
    assert posted.status_code == 302


def test_a_connection_idle_for_a_while_is_checked_before_use(
    own, postgresql_only, errors, monkeypatch
):
    client, code = _started(own, 3)
    assert client.get(f"/campagnes/{code}/evaluation").status_code == 200
    monkeypatch.setattr("config.db.PING_WHEN_IDLE_FOR", 0.0)  # every connection counts as idle
    _drop_connections(own[0])
    assert client.get(f"/campagnes/{code}/evaluation").status_code == 200
    assert errors == []  # replaced at checkout: no statement of the request ever failed


def test_a_page_that_reads_leaves_its_pooled_connection_as_it_found_it(own, postgresql_only):
    """Reads run in autocommit through psycopg2's flag alone: the connection goes back to the
    pool with no isolation level set, so the next page's switch sends nothing. (SQLAlchemy's
    `isolation_level="AUTOCOMMIT"` resets it to READ COMMITTED at check-in, and psycopg2 then
    sends a SET each time it switches to autocommit: a round trip per page that reads.)"""
    client, code = _started(own, 4)
    for _ in range(3):  # the pool's connections have each served a page that reads
        assert client.get(f"/campagnes/{code}/evaluation").status_code == 200
    counts.reset()
    assert client.get(f"/campagnes/{code}/evaluation").status_code == 200
    assert counts.totals()["GET journey.question"] == 1  # who and where: no SET, no BEGIN
    pooled = own[0].engine.raw_connection()
    try:
        assert pooled.dbapi_connection.autocommit is False
        assert pooled.dbapi_connection.isolation_level is None  # the server's default
    finally:
        pooled.close()


def test_the_answer_path_shows_who_is_signed_in_without_making_their_user_object(own):
    """The header (name, "Administration") and the language come from the row the page read the
    session with: no `User` object is made, on the question page, the answer or a checkpoint."""
    from campaigns.district import services as district
    from campaigns.shared.models import User
    from config.db import utcnow

    database, code, _ = own
    with database.session() as session, session.begin():
        user = session.scalars(select(User).where(User.email == "eleve3@example.org")).one()
        user.locale, user.email_verified_at = "en", utcnow()
        session.flush()
        district.grant(session, "eleve3@example.org", actor=district.COMMAND_LINE)
    client, code = _started(own, 3)
    made: list[object] = []
    listener = lambda target, args, kwargs: made.append(target)  # noqa: E731
    event.listen(User, "init", listener)
    try:
        page = client.get(f"/campagnes/{code}/evaluation").get_data(as_text=True)
        rng, pack = random.Random(3), load_pack()
        for _ in range(5):  # the fifth answer leads to a checkpoint
            _, posted = _answer(client, code, page, rng, pack)
            page = client.get(posted.headers["Location"]).get_data(as_text=True)
    finally:
        event.remove(User, "init", listener)
    assert "/checkpoint" in posted.headers["Location"]
    assert made == []
    assert '<html lang="en">' in page  # the user's own language
    assert "Léa Élève3" in page
    assert 'href="/admin"' in page  # an instance administrator with a proven address
    assert "Organization area" not in page  # a member of no organization (English: the header)
