"""CSV exports: the format Excel users expect, the columns of both campaign types, the values of
shared, to-share and started participants, and who may download them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from werkzeug.test import EnvironBuilder

from campaigns.accounts import users
from campaigns.journey import services as journey
from campaigns.orga import campaign_admin, exports
from campaigns.orga.exports import decimal_cell, export_filename, rate_cell, text_cell
from campaigns.shared.models import (
    Campaign,
    CampaignType,
    KnowledgeElement,
    Learner,
    Organization,
    OrganizationType,
    ParticipationStatus,
)
from config.app import create_app
from config.db import Database
from config.migrations import upgrade
from config.settings import Settings, sqlite_file
from engine.content import load_pack
from tests.conftest import TEST_SECRET
from tests.factories import organization_with_admin
from tests.journey_helpers import assessment_campaign
from tests.orga_helpers import sign_in, take_test, teacher, world

PACK = load_pack()
COMPETENCE_43 = "4.3 Protéger la santé, le bien-être et l’environnement"
AREA_4 = "4 Protection et sécurité"


def parse(response) -> list[list[str]]:
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf"), "UTF-8 byte order mark for Excel"
    text = body.decode("utf-8")[1:]
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


def by_name(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    header, *data = rows
    records = [dict(zip(header, row, strict=True)) for row in data]
    return {r["Nom du Participant"]: r for r in records}


def pupil(session, organization, last_name, *, first_name="Léa", division="3e A", n=0):
    user = users.create_user(
        session,
        first_name=first_name,
        last_name=last_name,
        email=f"{last_name.lower()[:20].replace('=', 'x').replace('(', '')}{n}@example.org",
    )
    session.add(
        Learner(
            organization_id=organization.id,
            user_id=user.id,
            first_name=first_name,
            last_name=last_name,
            division=division,
        )
    )
    session.flush()
    return user


def knowledge(user, skill, status, created_at):
    return KnowledgeElement(
        user_id=user.id,
        skill_id=skill.id,
        tube_id=skill.tube_id,
        competence_id=skill.competence_id,
        status=status,
        source="direct",
        earned_pix=Decimal(1) if status == "validated" else Decimal(0),
        created_at=created_at,
    )


@pytest.fixture
def school_campaign(db_session):
    """The admin's campaign with three pupils: one shared, one waiting to share, one started."""
    w = world(db_session)
    shared = pupil(db_session, w.school, "Bernard", n=1)
    waiting = pupil(db_session, w.school, "Armand", first_name="Zoé", division="3e B", n=2)
    started = pupil(db_session, w.school, "Chevalier", n=3)
    take_test(db_session, w.campaign, shared, success=0.6, seed=3)
    take_test(db_session, w.campaign, waiting, share=False)
    take_test(db_session, w.campaign, started, answers=2)
    content = journey.campaign_content(db_session, w.campaign)
    assert len(content.index.skills) == 23
    known = journey.user_knowledge(db_session, started.id)
    for skill in [s for s in content.index.skills.values() if s.id not in known][: 3 - len(known)]:
        db_session.add(knowledge(started, skill, "invalidated", dt.datetime.now(dt.UTC)))
    db_session.add(
        knowledge(
            started, PACK.skill_by_id["@rechercheRequete1"], "validated", dt.datetime.now(dt.UTC)
        )
    )
    db_session.commit()
    return w


def test_assessment_export_header_for_a_school(client, db_session, school_campaign):
    w = school_campaign
    sign_in(client, w.member.email)
    response = client.get(f"/orga/campagnes/{w.campaign.id}/export.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="resultats-')
    assert w.campaign.code in disposition and disposition.isascii()
    header = parse(response)[0]
    assert header == [
        "Nom de l'organisation",
        "ID Campagne",
        "Code",
        "Nom de la campagne",
        "Parcours",
        "Nom du Participant",
        "Prénom du Participant",
        "Classe",
        "% de progression",
        "Date de début",
        "Partage (O/N)",
        "Date du partage",
        "% maitrise de l'ensemble des acquis du profil",
        f"% de maitrise des acquis de la compétence {COMPETENCE_43}",
        f"Nombre d'acquis du profil cible dans la compétence {COMPETENCE_43}",
        f"Acquis maitrisés dans la compétence {COMPETENCE_43}",
        f"% de maitrise des acquis du domaine {AREA_4}",
        f"Nombre d'acquis du profil cible du domaine {AREA_4}",
        f"Acquis maitrisés du domaine {AREA_4}",
    ]


def test_assessment_rows_sorted_by_name_with_shared_figures_only(
    client, db_session, school_campaign
):
    w = school_campaign
    sign_in(client, w.admin.email)
    rows = parse(client.get(f"/orga/campagnes/{w.campaign.id}/export.csv"))
    assert [r[5] for r in rows[1:]] == ["Armand", "Bernard", "Chevalier"]
    records = by_name(rows)
    shared_participation = journey.live_participation(
        db_session, w.campaign, users.find_user_by_login(db_session, "bernard1@example.org")
    )
    snapshot = shared_participation.shared_results
    part = snapshot["competences"]["4.3"]
    shared = records["Bernard"]
    assert shared["Nom de l'organisation"] == w.school.name
    assert shared["ID Campagne"] == str(w.campaign.id)
    assert shared["Code"] == w.campaign.code
    assert shared["Nom de la campagne"] == "Évaluation 3e A"
    assert shared["Parcours"] == "4.3 Protéger la santé, le bien-être et l’environnement"
    assert shared["Prénom du Participant"] == "Léa"
    assert shared["Classe"] == "3e A"
    assert shared["% de progression"] == "1"
    assert shared["Partage (O/N)"] == "Oui"
    expected_rate = Decimal(part["validated"]) / Decimal(part["targeted"])
    assert shared[f"% de maitrise des acquis de la compétence {COMPETENCE_43}"] == decimal_cell(
        expected_rate
    )
    assert shared[f"Nombre d'acquis du profil cible dans la compétence {COMPETENCE_43}"] == str(
        part["targeted"]
    )
    assert shared[f"Acquis maitrisés dans la compétence {COMPETENCE_43}"] == str(part["validated"])
    assert shared[f"Acquis maitrisés du domaine {AREA_4}"] == str(
        snapshot["areas"]["4"]["validated"]
    )
    overall = shared["% maitrise de l'ensemble des acquis du profil"]
    assert overall == decimal_cell(shared_participation.mastery_rate)
    assert "." not in overall
    paris = shared_participation.shared_at.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert shared["Date du partage"] == paris.strftime("%d/%m/%Y %H:%M")  # November: UTC+1

    waiting = records["Armand"]
    assert waiting["Prénom du Participant"] == "Zoé"
    assert waiting["Classe"] == "3e B"
    assert waiting["% de progression"] == "1"
    assert waiting["Partage (O/N)"] == "Non"
    assert waiting["Date du partage"] == "NA"
    assert waiting["% maitrise de l'ensemble des acquis du profil"] == "NA"
    assert waiting[f"Acquis maitrisés dans la compétence {COMPETENCE_43}"] == "NA"

    started = records["Chevalier"]
    assert started["Partage (O/N)"] == "Non"
    assert started["% de progression"] == "0,13"  # 3 of the 23 skills assessed so far
    assert started[f"% de maitrise des acquis du domaine {AREA_4}"] == "NA"


def test_dates_are_in_paris_time(client, db_session, school_campaign):
    w = school_campaign
    user = users.find_user_by_login(db_session, "armand2@example.org")
    armand = journey.live_participation(db_session, w.campaign, user)
    assert armand.status is ParticipationStatus.TO_SHARE
    armand.created_at = dt.datetime(2026, 7, 14, 22, 30, tzinfo=dt.UTC)  # summer: UTC+2
    db_session.commit()
    sign_in(client, w.admin.email)
    records = by_name(parse(client.get(f"/orga/campagnes/{w.campaign.id}/export.csv")))
    assert records["Armand"]["Date de début"] == "15/07/2026 00:30"


def test_skill_columns_say_ok_ko_or_not_tested_as_of_the_share_date(
    client, db_session, school_campaign
):
    w = school_campaign
    content = journey.campaign_content(db_session, w.campaign)
    skills = [s for s in PACK.skills if s.id in content.index.skills]
    user = users.find_user_by_login(db_session, "bernard1@example.org")
    participation = journey.live_participation(db_session, w.campaign, user)
    known = journey.user_knowledge(db_session, user.id)
    # Knowledge gained after sharing does not change the export.
    untested = [s for s in skills if s.id not in known]
    if untested:
        later = participation.shared_at + dt.timedelta(hours=1)
        db_session.add(knowledge(user, untested[0], "validated", later))
    db_session.commit()
    sign_in(client, w.admin.email)
    plain = parse(client.get(f"/orga/campagnes/{w.campaign.id}/export.csv"))
    rows = parse(client.get(f"/orga/campagnes/{w.campaign.id}/export.csv?acquis=1"))
    header = rows[0]
    assert header[: len(plain[0])] == plain[0]
    # Skill ids start with "@", which a spreadsheet reads as a formula: neutralised like cells.
    assert header[len(plain[0]) :] == ["'" + s.id for s in skills]
    records = by_name(rows)
    cells = {s.id: records["Bernard"]["'" + s.id] for s in skills}
    for skill in skills:
        element = known.get(skill.id)
        expected = (
            "Non testé"
            if element is None
            else ("OK" if element.status.value == "validated" else "KO")
        )
        assert cells[skill.id] == expected
    assert set(cells.values()) <= {"OK", "KO", "Non testé"}
    validated = sum(v == "OK" for v in cells.values())
    assert validated == participation.validated_skills_count
    assert all(records["Armand"]["'" + s.id] == "NA" for s in skills)


def test_external_id_column_and_formula_injection(client, db_session):
    w = world(db_session)
    campaign = assessment_campaign(
        db_session, w.school, w.admin, name="=cmd|' /C calc'!A0", external_id_label="Numéro élève"
    )
    attacker = pupil(db_session, w.school, '=HYPERLINK("http://evil.example";"clic")', n=9)
    attacker.first_name = "+Sly"
    participation = journey.join(db_session, campaign, attacker, external_id="@SUM(1+1)")
    assert participation.participant_external_id == "@SUM(1+1)"
    normal = pupil(db_session, w.school, "Dupont", division="-3e C", n=8)
    journey.join(db_session, campaign, normal, external_id="A-12")
    db_session.commit()
    sign_in(client, w.admin.email)
    rows = parse(client.get(f"/orga/campagnes/{campaign.id}/export.csv"))
    header = rows[0]
    assert header[7:9] == ["Classe", "Numéro élève"]
    assert header[9] == "% de progression"
    records = by_name(rows)
    evil = records['\'=HYPERLINK("http://evil.example";"clic")']
    assert evil["Nom de la campagne"] == "'=cmd|' /C calc'!A0"
    assert evil["Numéro élève"] == "'@SUM(1+1)"
    assert evil["Classe"] == "3e A"
    # The learner's first name is the school's; the user's own name is not used.
    assert evil["Prénom du Participant"] == "Léa"
    assert records["Dupont"]["Classe"] == "'-3e C"
    assert records["Dupont"]["Numéro élève"] == "A-12"
    assert records["Dupont"]["% de progression"] == "0"


def test_no_class_column_outside_schools_and_names_from_the_account(client, db_session):
    world(db_session)  # imports the content
    created = organization_with_admin(
        db_session, name="Université Test", type=OrganizationType.SUP, admin_email="sup@example.org"
    )
    from tests.orga_helpers import TEACHER_PASSWORD

    users.set_password(db_session, created.admin, TEACHER_PASSWORD)
    created.admin.cgu_accepted_at = dt.datetime.now(dt.UTC)
    campaign = assessment_campaign(db_session, created.organization, created.admin, name="L1")
    student = users.create_user(
        db_session, first_name="Hugo", last_name="Martin", email="hugo@example.org"
    )
    take_test(db_session, campaign, student)
    db_session.commit()
    sign_in(client, "sup@example.org")
    rows = parse(client.get(f"/orga/campagnes/{campaign.id}/export.csv"))
    assert "Classe" not in rows[0]
    assert rows[0][5:8] == ["Nom du Participant", "Prénom du Participant", "% de progression"]
    assert rows[1][5:7] == ["Martin", "Hugo"]
    assert rows[1][rows[0].index("Partage (O/N)")] == "Oui"


def collection(db_session, w, **fields):
    return campaign_admin.create_campaign(
        db_session,
        organization=w.school,
        creator=w.admin,
        name="Collecte 2nde",
        type=CampaignType.PROFILES_COLLECTION,
        **fields,
    )


def test_profiles_collection_export(client, db_session):
    w = world(db_session)
    # Knowledge from an assessment counts in the profile sent to a collection campaign.
    sender = pupil(db_session, w.school, "Bernard", n=1)
    take_test(db_session, w.campaign, sender, success=0.9, seed=1)
    waiting = pupil(db_session, w.school, "Armand", n=2)
    campaign = collection(db_session, w, external_id_label="INE")
    sent = journey.join(db_session, campaign, sender, external_id="123")
    journey.share(db_session, sent)
    journey.join(db_session, campaign, waiting, external_id="456")
    db_session.commit()
    sign_in(client, w.member.email)
    response = client.get(f"/orga/campagnes/{campaign.id}/export.csv")
    assert 'filename="profils-' in response.headers["Content-Disposition"]
    rows = parse(response)
    header = rows[0]
    competence_columns = []
    for competence in PACK.competences:
        label = f"{competence.id} {competence.title}"
        competence_columns += [
            f"Niveau pour la compétence {label}",
            f"Nombre de pix pour la compétence {label}",
        ]
    assert len(PACK.competences) == 16
    assert header == [
        "Nom de l'organisation",
        "ID Campagne",
        "Code",
        "Nom de la campagne",
        "Nom du Participant",
        "Prénom du Participant",
        "Classe",
        "INE",
        "Envoi (O/N)",
        "Date de l'envoi",
        "Nombre de pix total",
        "Certifiable (O/N)",
        "Nombre de compétences certifiables",
        *competence_columns,
    ]
    records = by_name(rows)
    snapshot = sent.shared_results["profile"]
    row = records["Bernard"]
    assert row["INE"] == "123"
    assert row["Envoi (O/N)"] == "Oui"
    assert row["Nombre de pix total"] == str(snapshot["pix"]) and snapshot["pix"] > 0
    assert row["Certifiable (O/N)"] == ("Oui" if snapshot["certifiable"] else "Non")
    assert row["Nombre de compétences certifiables"] == str(snapshot["certifiable_competences"])
    level = snapshot["competences"]["4.3"]
    assert row[f"Niveau pour la compétence {COMPETENCE_43}"] == str(level["level"])
    assert row[f"Nombre de pix pour la compétence {COMPETENCE_43}"] == str(level["pix"])
    assert (
        row["Nombre de pix pour la compétence 1.1 Mener une recherche et une veille d’information"]
        == "0"
    )
    other = records["Armand"]
    assert other["Envoi (O/N)"] == "Non"
    assert other["Date de l'envoi"] == "NA"
    assert other["Nombre de pix total"] == "NA"
    assert other[f"Niveau pour la compétence {COMPETENCE_43}"] == "NA"


def test_improved_and_deleted_participations_are_left_out(client, db_session, school_campaign):
    w = school_campaign
    user = users.find_user_by_login(db_session, "chevalier3@example.org")
    journey.live_participation(db_session, w.campaign, user).deleted_at = dt.datetime.now(dt.UTC)
    user = users.find_user_by_login(db_session, "bernard1@example.org")
    journey.live_participation(db_session, w.campaign, user).is_improved = True
    db_session.commit()
    sign_in(client, w.admin.email)
    rows = parse(client.get(f"/orga/campagnes/{w.campaign.id}/export.csv"))
    assert [r[5] for r in rows[1:]] == ["Armand"]


def test_queries_are_batched_not_one_per_row(db_session, school_campaign):
    w = school_campaign
    for n in range(10, 16):
        take_test(db_session, w.campaign, pupil(db_session, w.school, f"Zed{n}", n=n), seed=n)
    db_session.flush()
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = db_session.get_bind().engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        chunks = list(exports.campaign_csv(db_session, w.campaign, w.school, with_skills=True))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    text = b"".join(chunks).decode("utf-8")
    assert text.count("\r\n") == 1 + 9
    assert len(chunks) == 2  # the header, then one batch
    # Per batch: the progress of tests under way, and the skills known at the share dates.
    on_knowledge = [s for s in statements if "FROM knowledge_elements" in s]
    assert len(on_knowledge) == 2
    # The sorted list of participations, then the snapshots of the batch's shared ones.
    assert len([s for s in statements if "FROM participations" in s]) == 2
    statements.clear()
    event.listen(engine, "before_cursor_execute", count)
    try:
        chunks = list(exports.campaign_csv(db_session, w.campaign, w.school, batch=4))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(chunks) == 1 + 3  # batches of 4, 4 and 1 rows
    # Without skill columns, knowledge is read only for the batch holding a test under way.
    assert len([s for s in statements if "FROM knowledge_elements" in s]) == 1
    assert len([s for s in statements if "FROM participations" in s]) == 1 + 3
    whole = b"".join(exports.campaign_csv(db_session, w.campaign, w.school))
    assert b"".join(chunks) == whole


def test_an_empty_campaign_exports_its_header_only(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.admin.email)
    rows = parse(client.get(f"/orga/campagnes/{w.member_campaign.id}/export.csv"))
    assert len(rows) == 1 and rows[0][0] == "Nom de l'organisation"


def test_another_organizations_campaign_is_not_found(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.member.email)
    assert client.get(f"/orga/campagnes/{w.other_campaign.id}/export.csv").status_code == 404
    assert client.get("/orga/campagnes/999999/export.csv").status_code == 404


def test_visitors_are_sent_to_sign_in(client, db_session):
    w = world(db_session)
    db_session.commit()
    response = client.get(f"/orga/campagnes/{w.campaign.id}/export.csv")
    assert response.status_code == 302
    assert "/connexion" in response.headers["Location"]


def test_members_export_campaigns_they_do_not_own(client, db_session):
    w = world(db_session)
    teacher(db_session, w.school, email="autre@example.org")
    db_session.commit()
    sign_in(client, "autre@example.org")
    assert client.get(f"/orga/campagnes/{w.campaign.id}/export.csv").status_code == 200


def test_cell_formats():
    assert text_cell("=1+1") == "'=1+1"
    assert text_cell("\tx") == "'\tx"
    assert text_cell("\rx") == "'\rx"
    assert text_cell("-x") == "'-x" and text_cell("+x") == "'+x" and text_cell("@x") == "'@x"
    assert text_cell("Dupont") == "Dupont"
    assert text_cell(None) == "NA" and text_cell("") == "NA"
    assert rate_cell(3, 4) == "0,75"
    assert rate_cell(2, 3) == "0,67"
    assert rate_cell(1, 8) == "0,13"  # half up, not to even
    assert rate_cell(4, 4) == "1" and rate_cell(0, 4) == "0"
    assert rate_cell(1, 0) == "NA"
    assert decimal_cell(Decimal("0.1250")) == "0,13"


def test_filename_is_ascii_with_the_paris_day(db_session):
    w = world(db_session)
    late = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)  # already 2 March in Paris
    assert export_filename(w.campaign, late) == f"resultats-{w.campaign.code}-2026-03-02.csv"


def test_progress_follows_the_rule_of_the_students_progress_bar(
    client, db_session, school_campaign
):
    """Old failures are forgotten, old successes kept, a reset erases: as the test itself sees."""
    w = school_campaign
    user = users.find_user_by_login(db_session, "chevalier3@example.org")
    participation = journey.live_participation(db_session, w.campaign, user)
    content = journey.campaign_content(db_session, w.campaign)
    known = journey.user_knowledge(db_session, user.id)
    fresh = [s for s in content.index.skills.values() if s.id not in known]
    assessed = [s for s in content.index.skills.values() if s.id in known]
    long_ago = participation.created_at - dt.timedelta(days=10)
    db_session.add(knowledge(user, fresh[0], "invalidated", long_ago))  # forgotten
    db_session.add(knowledge(user, fresh[1], "validated", long_ago))  # kept
    db_session.add(knowledge(user, fresh[2], "invalidated", long_ago))
    db_session.add(knowledge(user, fresh[2], "validated", long_ago + dt.timedelta(days=1)))
    db_session.add(knowledge(user, assessed[0], "reset", dt.datetime.now(dt.UTC)))  # erased
    db_session.commit()
    expected = len(
        journey.user_knowledge(db_session, user.id, at=participation.created_at).keys()
        & content.index.skills.keys()
    )
    assert expected == 3 - 1 + 2
    sign_in(client, w.admin.email)
    records = by_name(parse(client.get(f"/orga/campagnes/{w.campaign.id}/export.csv")))
    assert records["Chevalier"]["% de progression"] == rate_cell(4, 23) == "0,17"


def test_cells_are_quoted_as_the_csv_module_would():
    awkward = ['Dupont; "Jo"', "Line\nbreak", "plain", "", "tab\tcell", 'end"']
    line = exports.csv_line([exports.csv_field(value) for value in awkward])
    expected = io.StringIO()
    csv.writer(expected, delimiter=";", lineterminator="\r\n").writerow(awkward)
    assert line == expected.getvalue()
    assert next(csv.reader(io.StringIO(line), delimiter=";")) == awkward


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="the second connection is for PostgreSQL"
)
def test_on_postgresql_the_facts_are_read_on_a_second_connection_with_the_same_result(
    scratch_databases,
):
    """Committed data in a database of its own: the export's session is bound to the engine,
    as in a request, so the batch facts are read on a helper thread and its own connection."""
    url = scratch_databases.new("export_threads")
    database = Database(Settings(database_url=url))
    try:
        upgrade(database)
        with database.session() as session, session.begin():
            w = world(session)
            for n, (name, share, answers) in enumerate(
                [("Bernard", True, None), ("Armand", False, None), ("Chevalier", True, 2)]
                + [(f"Zed{k}", k % 2 == 0, None if k % 3 else 3) for k in range(7)]
            ):
                user = pupil(session, w.school, name, n=n + 1)
                take_test(session, w.campaign, user, seed=n, share=share, answers=answers)
            campaign_id, school_id = w.campaign.id, w.school.id
        seen: list[tuple[str, str]] = []

        def record(_conn, _cursor, statement, *_args):
            seen.append((threading.current_thread().name, statement))

        event.listen(database.engine, "before_cursor_execute", record)
        try:
            with database.session() as session:
                campaign = session.get(Campaign, campaign_id)
                school = session.get(Organization, school_id)
                threaded = b"".join(
                    exports.campaign_csv(session, campaign, school, with_skills=True, batch=3)
                )
        finally:
            event.remove(database.engine, "before_cursor_execute", record)
        helper = {statement for thread, statement in seen if thread.startswith("export-facts")}
        assert any("knowledge_elements" in s for s in helper)
        assert any("shared_results" in s for s in helper)
        assert not any("ORDER BY" in s and "learners" in s for s in helper)  # rows: this thread
        with database.engine.connect() as connection:  # bound to a connection: facts in line
            session = Session(bind=connection)
            campaign = session.get(Campaign, campaign_id)
            school = session.get(Organization, school_id)
            in_line = b"".join(
                exports.campaign_csv(session, campaign, school, with_skills=True, batch=3)
            )
            session.close()
        assert threaded == in_line
        assert threaded.count(b"\r\n") == 1 + 10

        def helpers() -> list[threading.Thread]:
            return [t for t in threading.enumerate() if t.name.startswith("export-facts")]

        with database.session() as session:  # the client goes away after the first rows
            campaign = session.get(Campaign, campaign_id)
            school = session.get(Organization, school_id)
            stream = exports.campaign_csv(session, campaign, school, batch=3)
            next(stream), next(stream)  # the header, then the first batch
            assert helpers() and database.engine.pool.checkedout() == 2
            stream.close()
            assert not helpers() and database.engine.pool.checkedout() == 1  # the session's
        assert database.engine.pool.checkedout() == 0
        busy = Database(Settings(database_url=url, database_pool_size=1))
        try:  # no idle connection to spare: the facts are read in line, nobody waits
            with busy.session() as session:
                campaign = session.get(Campaign, campaign_id)
                school = session.get(Organization, school_id)
                chunks = []
                for chunk in exports.campaign_csv(
                    session, campaign, school, with_skills=True, batch=3
                ):
                    assert not helpers() and busy.engine.pool.checkedout() == 1
                    chunks.append(chunk)
            assert b"".join(chunks) == in_line
        finally:
            busy.dispose()
    finally:
        database.dispose()


# -- the export's connections: a real engine and pool, committed data -----------------------------


@dataclass
class Served:
    database: Database
    app: Flask
    email: str  # the teacher's
    url: str  # the campaign's export


@pytest.fixture
def served(scratch_databases) -> Iterator[Served]:
    """An app on a real engine, as a worker runs it: a pool of two connections on PostgreSQL (and
    as many overflow), a file in WAL mode on SQLite, committed data in a database of its own, and
    the teacher signed in through the sign-in form."""
    url = scratch_databases.new("export_pool")
    settings = Settings(
        database_url=url, secret_key=TEST_SECRET, testing=True, database_pool_size=2
    )
    database = Database(settings, pool_timeout=2)  # a leak fails in seconds, not after 30
    try:
        upgrade(database)
        with database.session() as session, session.begin():
            w = world(session)
            for n, (name, share, answers) in enumerate(
                [("Bernard", True, None), ("Armand", False, None), ("Chevalier", True, 2)]
            ):
                user = pupil(session, w.school, name, n=n + 1)
                take_test(session, w.campaign, user, seed=n, share=share, answers=answers)
            email, campaign_id = w.admin.email, w.campaign.id
        app = create_app(settings, database=database)
        yield Served(database, app, email, f"/orga/campagnes/{campaign_id}/export.csv")
    finally:
        database.dispose()


def signed_in(served: Served):
    client = served.app.test_client()
    sign_in(client, served.email)
    return client


def write_at_once(database: Database) -> None:
    """A write on a connection of its own, outside the pool, that gives up at once when another
    transaction holds what it needs (SQLite: the write lock)."""
    if database.engine.dialect.name == "sqlite":
        connection = sqlite3.connect(sqlite_file(database.url), timeout=0.2, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")  # "database is locked" while a writer holds it
            connection.execute("UPDATE organizations SET name = name")
            connection.execute("COMMIT")
        finally:
            connection.close()
        return
    engine = create_engine(database.url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '200ms'"))
            connection.execute(text("UPDATE organizations SET name = name"))
    finally:
        engine.dispose()


def idle_in_transaction(database: Database) -> int:
    """PostgreSQL sessions of this database that hold a transaction and do nothing."""
    engine = create_engine(database.url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state LIKE 'idle in transaction%'"
                )
            ).scalar_one()
    finally:
        engine.dispose()


def assert_nothing_held(served: Served) -> None:
    """What users notice after an export: another connection writes at once, a sign-in (which
    writes) works, /healthz answers 200; and the pool has every connection back."""
    write_at_once(served.database)
    client = signed_in(served)
    assert client.get("/healthz").status_code == 200
    if served.database.engine.dialect.name == "postgresql":
        assert idle_in_transaction(served.database) == 0
    assert served.database.engine.pool.checkedout() == 0


def first_rows(served: Served, client) -> object:
    """Starts an export and reads its header and first rows; the response, still open."""
    response = client.get(served.url, buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    assert next(chunks).startswith(b"\xef\xbb\xbfNom de l'organisation")
    assert b"Bernard" in next(chunks)  # the export is under way: reading on its connection(s)
    return response


def test_a_complete_export_gives_its_connections_back(served):
    response = signed_in(served).get(served.url)
    assert response.status_code == 200
    assert [row[5] for row in parse(response)[1:]] == ["Armand", "Bernard", "Chevalier"]
    assert_nothing_held(served)


def test_an_export_the_client_leaves_gives_its_connections_back(served):
    client = signed_in(served)
    response = first_rows(served, client)
    on_postgresql = served.database.engine.dialect.name == "postgresql"
    # The rows' connection and, on PostgreSQL, the facts' one (the pool had two idle).
    assert served.database.engine.pool.checkedout() == (2 if on_postgresql else 1)
    write_at_once(served.database)  # writers keep going while an export reads (SQLite: WAL)
    response.close()  # the client goes away: the server closes the response
    assert_nothing_held(served)
    # Closed before its body started: a HEAD request, and a GET whose body is never read.
    assert client.head(served.url).status_code == 200
    cookie = client.get_cookie(served.app.config["SESSION_COOKIE_NAME"])
    environ = EnvironBuilder(
        path=served.url, headers={"Cookie": f"{cookie.key}={cookie.value}"}
    ).get_environ()
    statuses: list[str] = []
    body = served.app(environ, lambda status, _headers, _exc_info=None: statuses.append(status))
    body.close()
    assert statuses == ["200 OK"]
    assert_nothing_held(served)


def test_twenty_exports_in_a_row_with_a_pool_of_two(served):
    client = signed_in(served)
    for n in range(20):
        if n % 2:
            first_rows(served, client).close()
        else:
            response = client.get(served.url + ("?acquis=1" if n % 4 == 0 else ""))
            assert response.status_code == 200
            assert len(parse(response)) == 1 + 3
    assert_nothing_held(served)
