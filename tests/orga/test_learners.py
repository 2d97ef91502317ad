"""The "Élèves" tab: importing the school's list, the list with login methods and participations,
temporary passwords and identifiants for students, and the "Participants" tab elsewhere."""

import io
import re

from sqlalchemy import event, select

from campaigns.accounts import users
from campaigns.orga.learners import import_learners
from campaigns.shared.models import (
    AuthenticationMethod,
    AuthenticationProvider,
    Learner,
    MembershipRole,
    OrganizationType,
)
from tests.conftest import csrf_token
from tests.factories import organization_with_admin
from tests.journey_helpers import assessment_campaign
from tests.orga_helpers import TEACHER_PASSWORD, sign_in, take_test, teacher, world

HEADER = "Nom;Prénom;Date de naissance;Division;INE"
STUDENT_PASSWORD = "Eleve-Motdepasse-1"


def csv_bytes(*lines: str) -> bytes:
    return "\n".join([HEADER, *lines]).encode()


def upload(client, data: bytes, filename: str = "eleves.csv"):
    token = csrf_token(client, "/orga/eleves")
    return client.post(
        "/orga/eleves/import",
        data={"csrf_token": token, "file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def learner_named(session, organization, last_name):
    return session.scalars(
        select(Learner).where(
            Learner.organization_id == organization.id, Learner.last_name == last_name
        )
    ).one()


def ana_alpha(db_session, organization, **login):
    """Ana Alpha (3A) on the school's list, with an account that signs in with `login`
    (`email=` or `username=`)."""
    import_learners(db_session, organization, csv_bytes("Alpha;Ana;01/01/2010;3A;"))
    learner = learner_named(db_session, organization, "Alpha")
    account(db_session, learner, **login)
    return learner


def account(session, learner, *, email=None, username=None, sso=None, password=True):
    """An account linked to `learner`: e-mail and/or identifiant with a password, and/or
    single sign-on identities ("SAML" GAR or "LTI")."""
    user = users.create_user(
        session,
        first_name=learner.first_name,
        last_name=learner.last_name,
        email=email,
        username=username,
        password=STUDENT_PASSWORD if password and (email or username) else None,
    )
    for provider in sso or ():
        session.add(
            AuthenticationMethod(
                user_id=user.id,
                provider=AuthenticationProvider(provider),
                issuer="gar" if provider == "SAML" else "https://moodle.example.org",
                external_id=f"{provider}-{user.id}",
            )
        )
    learner.user_id = user.id
    session.flush()
    return user


def rows_of(page: str) -> list[str]:
    """The table's body rows, tags removed, spaces collapsed."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in rows]


# -- import -----------------------------------------------------------------------------------------


def test_an_admin_imports_the_list_and_sees_the_report(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.admin.email)
    page = client.get("/orga/eleves").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'for="file"' in page
    assert "désactivés" in page  # the re-import rule is explained

    response = upload(
        client, csv_bytes("Martin;Léa;12/03/2010;3A;1234567890A", "Durand;Noé;05/01/2010;3B;")
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 élèves ajoutés, 0 mis à jour, 0 désactivés" in page
    assert rows_of(page)[0].startswith("Durand Noé 05/01/2010 3B Aucune 0")

    response = upload(client, csv_bytes("Martin;Léa;12/03/2010;4A;1234567890A"))
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "0 élèves ajoutés, 1 mis à jour, 1 désactivés" in page
    assert learner_named(db_session, w.school, "Durand").is_disabled


def test_a_bad_file_lists_its_errors_and_imports_nothing(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.admin.email)
    response = upload(
        client,
        csv_bytes("Martin;Léa;12/03/2010;3A;", "Durand;Noé;31/02/2010;3B;", ";Jade;01/01/2010;3B;"),
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Le fichier contient 2 erreurs" in page
    assert "Ligne 3 : date de naissance invalide « 31/02/2010 »" in page
    assert "Ligne 4 : nom manquant" in page
    assert 'aria-invalid="true"' in page and "import-errors" in page
    assert (
        db_session.scalars(select(Learner).where(Learner.organization_id == w.school.id)).all()
        == []
    )


def test_an_upload_without_file_is_refused(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.admin.email)
    token = csrf_token(client, "/orga/eleves")
    response = client.post(
        "/orga/eleves/import", data={"csrf_token": token}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert "Choisissez le fichier à importer." in response.get_data(as_text=True)


def test_members_see_the_list_but_only_admins_import(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.member.email)
    page = client.get("/orga/eleves").get_data(as_text=True)
    assert "Seuls les administrateurs de l’organisation peuvent importer" in page
    assert 'name="file"' not in page
    response = upload(client, csv_bytes("Martin;Léa;12/03/2010;3A;"))
    assert response.status_code == 403
    assert (
        db_session.scalars(select(Learner).where(Learner.organization_id == w.school.id)).all()
        == []
    )


def test_the_import_needs_the_csrf_token(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.admin.email)
    response = client.post(
        "/orga/eleves/import",
        data={"file": (io.BytesIO(csv_bytes("Martin;Léa;12/03/2010;3A;")), "e.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert (
        db_session.scalars(select(Learner).where(Learner.organization_id == w.school.id)).all()
        == []
    )


# -- the list ---------------------------------------------------------------------------------------


def test_the_list_shows_login_methods_and_participations(client, db_session):
    w = world(db_session)
    import_learners(
        db_session,
        w.school,
        csv_bytes(
            "Alpha;Ana;01/01/2010;3A;",
            "Bravo;Ben;02/02/2010;3A;",
            "Charlie;Cléo;03/03/2010;3B;",
            "Delta;Dan;04/04/2010;3B;",
            "Echo;Eva;05/05/2010;3B;",
        ),
    )
    ana = account(db_session, learner_named(db_session, w.school, "Alpha"), email="ana@example.org")
    account(db_session, learner_named(db_session, w.school, "Bravo"), username="ben.bravo0202")
    account(db_session, learner_named(db_session, w.school, "Charlie"), sso=["SAML"])
    account(
        db_session,
        learner_named(db_session, w.school, "Delta"),
        email="dan@example.org",
        sso=["LTI"],
    )
    take_test(db_session, w.campaign, ana)  # shared
    # The latest participation (the same skills, already known: nothing left to ask).
    take_test(db_session, w.member_campaign, ana, answers=1, share=False)
    take_test(db_session, w.other_campaign, ana, answers=1, share=False)  # another school's
    db_session.commit()
    sign_in(client, w.member.email)
    rows = rows_of(client.get("/orga/eleves").get_data(as_text=True))
    assert rows[0].startswith("Alpha Ana 01/01/2010 3A Adresse e-mail 2 En attente d’envoi")
    assert rows[1].startswith("Bravo Ben 02/02/2010 3A Identifiant (ben.bravo0202) 0 —")
    assert rows[2].startswith("Charlie Cléo 03/03/2010 3B Médiacentre (GAR) 0")
    assert rows[3].startswith("Delta Dan 04/04/2010 3B Adresse e-mail LMS 0")
    assert rows[4].startswith("Echo Eva 05/05/2010 3B Aucune 0")
    # Password reset for password logins only; an identifiant for accounts without login.
    assert "Réinitialiser le mot de passe" in rows[0] and "Réinitialiser" in rows[1]
    assert "Réinitialiser" not in rows[2] and "Créer un identifiant" in rows[2]
    assert "Réinitialiser" not in rows[4] and "Créer un identifiant" not in rows[4]


def test_filters_by_class_name_and_disabled_learners(client, db_session):
    w = world(db_session)
    import_learners(
        db_session,
        w.school,
        csv_bytes(
            "Alpha;Ana;01/01/2010;3A;", "Bravo;Ben;02/02/2010;3B;", "Charlie;Cléo;03/03/2010;3B;"
        ),
    )
    import_learners(
        db_session, w.school, csv_bytes("Alpha;Ana;01/01/2010;3A;", "Bravo;Ben;02/02/2010;3B;")
    )
    db_session.commit()
    sign_in(client, w.member.email)

    def names(query):
        return [
            r.split()[0]
            for r in rows_of(client.get(f"/orga/eleves?{query}").get_data(as_text=True))
        ]

    assert names("") == ["Alpha", "Bravo"]
    assert names("desactives=1") == ["Alpha", "Bravo", "Charlie"]
    assert (
        "(désactivé)" in rows_of(client.get("/orga/eleves?desactives=1").get_data(as_text=True))[2]
    )
    assert names("division=3B") == ["Bravo"]
    assert names("division=3B&desactives=1") == ["Bravo", "Charlie"]
    assert names("q=ben") == ["Bravo"]
    assert names("q=ana+alpha") == ["Alpha"]
    page = client.get("/orga/eleves?q=zzz").get_data(as_text=True)
    assert "Aucun élève ne correspond." in page


def test_a_percent_sign_is_searched_literally(client, db_session):
    w = world(db_session)
    import_learners(db_session, w.school, csv_bytes("Alpha;Ana;01/01/2010;3A;"))
    db_session.commit()
    sign_in(client, w.member.email)
    page = client.get("/orga/eleves?q=%25").get_data(as_text=True)
    assert "Aucun élève ne correspond." in page


def test_the_list_is_paginated_by_fifty_in_a_fixed_number_of_queries(client, db_session):
    w = world(db_session)
    lines = [f"Nom{i:03d};Prénom;01/01/2010;3A;" for i in range(120)]
    import_learners(db_session, w.school, csv_bytes(*lines))

    def link(numbers):
        for n in numbers:
            learner = learner_named(db_session, w.school, f"Nom{n:03d}")
            user = account(db_session, learner, email=f"e{n}@example.org")
            take_test(db_session, w.campaign, user, answers=1, share=False)
        db_session.commit()

    statements = []
    engine = db_session.get_bind().engine

    def count(*_args, **_kwargs):
        statements.append(1)

    def queries(path):
        del statements[:]
        event.listen(engine, "before_cursor_execute", count)
        try:
            page = client.get(path).get_data(as_text=True)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return page, len(statements)

    link(range(2))
    sign_in(client, w.member.email)
    client.get("/orga/eleves")  # the first page after signing in does a little more
    first, before = queries("/orga/eleves")
    link(range(2, 30))
    first, after = queries("/orga/eleves")
    last, _ = queries("/orga/eleves?page=3")
    # 30 accounts with participations on the page cost the same queries as 2.
    assert after == before and after < 20
    assert len(rows_of(first)) == 50 and rows_of(first)[0].startswith("Nom000")
    assert rows_of(first)[29].startswith("Nom029 Prénom 01/01/2010 3A Adresse e-mail 1")
    assert "120 élèves" in first
    assert "Page 1 sur 3" in first and "page=2" in first
    assert len(rows_of(last)) == 20 and rows_of(last)[-1].startswith("Nom119")
    assert "Page 3 sur 3" in last and "page=2" in last
    # The links keep the list's filters.
    middle = client.get("/orga/eleves?q=nom&division=3A&page=2").get_data(as_text=True)
    assert 'href="/orga/eleves?q=nom&amp;division=3A&amp;page=1" rel="prev"' in middle
    assert 'href="/orga/eleves?q=nom&amp;division=3A&amp;page=3" rel="next"' in middle


# -- passwords and identifiants -----------------------------------------------------------------------


def test_a_member_gives_a_temporary_password_shown_once(client, db_session):
    w = world(db_session)
    learner = ana_alpha(db_session, w.school, email="ana@example.org")
    db_session.commit()
    sign_in(client, w.member.email)
    token = csrf_token(client, "/orga/eleves")
    response = client.post(f"/orga/eleves/{learner.id}/mot-de-passe", data={"csrf_token": token})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    password = re.search(r"Mot de passe provisoire</dt>\s*<dd><code>([^<]+)</code>", page).group(1)
    assert "ana@example.org" in page
    assert password not in (response.headers.get("Set-Cookie") or "")
    assert password not in client.get("/orga/eleves").get_data(as_text=True)

    student = app_client(client)
    assert not try_sign_in(student, "ana@example.org", STUDENT_PASSWORD)
    assert try_sign_in(student, "ana@example.org", password)
    user = users.find_user_by_login(db_session, "ana@example.org")
    db_session.refresh(user)
    assert users.must_change_password(db_session, user)
    # (The student's open sessions end: tests/test_account_trust.py.)


def revoked_sessions(db_session, user):
    from campaigns.shared.models import UserSession

    return db_session.scalars(
        select(UserSession).where(
            UserSession.user_id == user.id, UserSession.revoked_at.is_not(None)
        )
    ).all()


def app_client(client):
    return client.application.test_client()


def try_sign_in(client, login, password) -> bool:
    token = csrf_token(client, "/connexion")
    response = client.post(
        "/connexion", data={"login": login, "password": password, "csrf_token": token}
    )
    return response.status_code == 302


def test_single_sign_on_students_and_students_without_account_are_refused(client, db_session):
    w = world(db_session)
    import_learners(
        db_session, w.school, csv_bytes("Alpha;Ana;01/01/2010;3A;", "Bravo;Ben;02/02/2010;3A;")
    )
    gar = learner_named(db_session, w.school, "Alpha")
    user = account(db_session, gar, sso=["SAML", "LTI"])
    never = learner_named(db_session, w.school, "Bravo")
    db_session.commit()
    sign_in(client, w.admin.email)
    token = csrf_token(client, "/orga/eleves")
    refused = client.post(f"/orga/eleves/{gar.id}/mot-de-passe", data={"csrf_token": token})
    assert refused.status_code == 409
    assert "Médiacentre (GAR)" in refused.get_data(as_text=True)
    db_session.expire_all()
    kinds = {
        m.provider
        for m in db_session.scalars(
            select(AuthenticationMethod).where(AuthenticationMethod.user_id == user.id)
        )
    }
    assert kinds == {AuthenticationProvider.SAML, AuthenticationProvider.LTI}
    assert not revoked_sessions(db_session, user)
    nobody = client.post(f"/orga/eleves/{never.id}/mot-de-passe", data={"csrf_token": token})
    assert nobody.status_code == 409
    assert "jamais connecté" in nobody.get_data(as_text=True)


def test_an_identifiant_is_created_for_a_gar_student(client, db_session):
    w = world(db_session)
    import_learners(
        db_session, w.school, csv_bytes("Martin;Léa;12/03/2010;3A;", "Martín;Lea;12/03/2011;3A;")
    )
    lea = learner_named(db_session, w.school, "Martin")
    account(db_session, lea, sso=["SAML"])
    users.create_user(db_session, first_name="X", last_name="Y", username="lea.martin1203")
    db_session.commit()
    sign_in(client, w.member.email)
    token = csrf_token(client, "/orga/eleves")
    response = client.post(f"/orga/eleves/{lea.id}/identifiant", data={"csrf_token": token})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert "<code>lea.martin12032</code>" in page
    password = re.search(r"Mot de passe provisoire</dt>\s*<dd><code>([^<]+)</code>", page).group(1)
    assert try_sign_in(app_client(client), "lea.martin12032", password)
    # The GAR login is kept; a second identifiant is refused.
    again = client.post(f"/orga/eleves/{lea.id}/identifiant", data={"csrf_token": token})
    assert again.status_code == 409
    rows = rows_of(client.get("/orga/eleves").get_data(as_text=True))
    assert "Identifiant (lea.martin12032) Médiacentre (GAR)" in rows[0]


def test_another_schools_learners_are_not_found(client, db_session):
    w = world(db_session)
    theirs = ana_alpha(db_session, w.other, email="ana@example.org")
    db_session.commit()
    sign_in(client, w.admin.email)
    assert "Alpha" not in client.get("/orga/eleves").get_data(as_text=True)
    token = csrf_token(client, "/orga/eleves")
    for action in ("mot-de-passe", "identifiant"):
        response = client.post(f"/orga/eleves/{theirs.id}/{action}", data={"csrf_token": token})
        assert response.status_code == 404
    assert client.get(f"/orga/eleves/{theirs.id}/mot-de-passe").status_code == 404
    assert try_sign_in(app_client(client), "ana@example.org", STUDENT_PASSWORD)


QUESTION = re.compile(r'<h1 id="question" tabindex="-1" autofocus>(.*?)</h1>', re.S)


def test_a_password_reset_is_asked_first_and_asking_changes_nothing(client, db_session):
    w = world(db_session)
    learner = ana_alpha(db_session, w.school, email="ana@example.org")
    db_session.commit()
    sign_in(client, w.member.email)
    path = f"/orga/eleves/{learner.id}/mot-de-passe"
    listing = client.get("/orga/eleves").get_data(as_text=True)
    assert f'<a href="{path}">Réinitialiser le mot de passe' in listing  # a link, not a form
    assert f'action="{path}"' not in listing

    response = client.get(path)
    assert response.status_code == 200
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    # The only script is the site's progressive enhancement (menu, tables), never a confirm().
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/parcours.js" defer>']
    heading = QUESTION.search(page).group(1).replace("\u202f", " ")
    assert heading == "Réinitialiser le mot de passe de Ana Alpha ?"
    assert "<code>ana@example.org</code>" in page and "<dd>3A</dd>" in page
    assert "<dd>01/01/2010</dd>" in page
    assert "s’affichera une seule fois" in page and "déconnecté" in page
    assert 'aria-current="page">Élèves</a>' in page
    form = page.split(f'<form method="post" action="{path}"', 1)[1].split("</form>", 1)[0]
    assert 'name="csrf_token"' in form
    assert 'aria-describedby="question consequences">Confirmer</button>' in form
    assert '<a href="/orga/eleves">Annuler</a>' in form
    assert "Mot de passe provisoire</dt>" not in page  # nothing was reset yet
    # Asking twice changes nothing: the student still signs in with their own password.
    client.get(path)
    assert try_sign_in(app_client(client), "ana@example.org", STUDENT_PASSWORD)

    response = client.post(path, data={"csrf_token": csrf_token(client, path)})
    assert response.status_code == 200
    assert "Mot de passe provisoire</dt>" in response.get_data(as_text=True)
    assert not try_sign_in(app_client(client), "ana@example.org", STUDENT_PASSWORD)
    assert client.put(path).status_code == 405


def test_the_list_filters_and_page_are_kept_through_the_confirmation(client, db_session):
    w = world(db_session)
    learner = ana_alpha(db_session, w.school, username="ana.alpha0101")
    db_session.commit()
    sign_in(client, w.member.email)
    listing = client.get("/orga/eleves?q=ana&division=3A&page=abc").get_data(as_text=True)
    path = f"/orga/eleves/{learner.id}/mot-de-passe"
    assert f'href="{path}?q=ana&amp;division=3A"' in listing
    page = client.get(f"{path}?q=ana&division=3A").get_data(as_text=True)
    assert '<a href="/orga/eleves?q=ana&amp;division=3A">Annuler</a>' in page
    assert '<input type="hidden" name="division" value="3A">' in page
    response = client.post(
        path, data={"csrf_token": csrf_token(client, path), "q": "ana", "division": "3A"}
    )
    assert '<a href="/orga/eleves?q=ana&amp;division=3A">Retour' in response.get_data(as_text=True)


def test_no_confirmation_is_offered_for_a_login_the_school_does_not_manage(client, db_session):
    w = world(db_session)
    import_learners(
        db_session,
        w.school,
        csv_bytes(
            "Alpha;Ana;01/01/2010;3A;", "Bravo;Ben;02/02/2010;3A;", "Charlie;Cléo;03/03/2010;3A;"
        ),
    )
    gar = learner_named(db_session, w.school, "Alpha")
    user = account(db_session, gar, sso=["SAML", "LTI"])
    never = learner_named(db_session, w.school, "Bravo")
    staff = learner_named(db_session, w.school, "Charlie")
    staff.user_id = w.other_admin.id
    db_session.commit()
    sign_in(client, w.member.email)
    for learner, text in (
        (gar, "Médiacentre (GAR)"),
        (never, "jamais connecté"),
        (staff, "membre d’une organisation"),
    ):
        path = f"/orga/eleves/{learner.id}/mot-de-passe"
        response = client.get(path)
        assert response.status_code == 409
        page = response.get_data(as_text=True)
        assert text in page and "Confirmer" not in page and f'action="{path}"' not in page
    db_session.expire_all()
    assert not revoked_sessions(db_session, user)
    assert try_sign_in(app_client(client), w.other_admin.email, TEACHER_PASSWORD)


# -- organizations that are not schools -------------------------------------------------------------


def test_other_organizations_list_their_participants(client, db_session):
    w = world(db_session)
    company = organization_with_admin(
        db_session, name="Entreprise Démo", type=OrganizationType.PRO, admin_email="rh@example.org"
    ).organization
    hr = teacher(db_session, company, email="rh2@example.org", role=MembershipRole.ADMIN)
    campaign = assessment_campaign(db_session, company, hr, name="Évaluation salariés")
    second = assessment_campaign(db_session, company, hr, name="Deuxième")
    zoe = users.create_user(
        db_session,
        first_name="Zoé",
        last_name="Zèbre",
        email="zoe@example.org",
        password=STUDENT_PASSWORD,
    )
    max_ = users.create_user(
        db_session,
        first_name="Max",
        last_name="Abel",
        email="max@example.org",
        password=STUDENT_PASSWORD,
    )
    take_test(db_session, campaign, zoe, answers=1, share=False)
    take_test(db_session, second, zoe, answers=1, share=False)
    take_test(db_session, campaign, max_, answers=1, share=False)
    take_test(db_session, w.campaign, max_, answers=1, share=False)  # another organization
    db_session.commit()
    sign_in(client, hr.email, TEACHER_PASSWORD)
    page = client.get("/orga/eleves").get_data(as_text=True)
    assert "<h1>Participants</h1>" in page and "importer" not in page.lower()
    rows = rows_of(page)
    assert rows[0].startswith("Abel Max max@example.org 1")
    assert rows[1].startswith("Zèbre Zoé zoe@example.org 2")
    assert re.search(r"2 \d{2}/\d{2}/\d{4}$", rows[1])
    assert [
        r.split()[0] for r in rows_of(client.get("/orga/eleves?q=zoe").get_data(as_text=True))
    ] == ["Zèbre"]
    assert upload(client, csv_bytes("Martin;Léa;12/03/2010;3A;")).status_code == 404


def test_a_staff_account_linked_to_a_learner_is_never_reset(client, db_session):
    w = world(db_session)
    import_learners(db_session, w.school, csv_bytes("Alpha;Ana;01/01/2010;3A;"))
    learner = learner_named(db_session, w.school, "Alpha")
    learner.user_id = w.other_admin.id  # another school's admin, reconciled as a learner here
    db_session.commit()
    sign_in(client, w.member.email)
    token = csrf_token(client, "/orga/eleves")
    response = client.post(f"/orga/eleves/{learner.id}/mot-de-passe", data={"csrf_token": token})
    assert response.status_code == 409
    assert "membre d’une organisation" in response.get_data(as_text=True)
    assert try_sign_in(app_client(client), w.other_admin.email, TEACHER_PASSWORD)


def test_a_learner_no_longer_on_the_list_is_out_of_the_schools_reach(client, db_session):
    w = world(db_session)
    import_learners(db_session, w.school, csv_bytes("Alpha;Ana;01/01/2010;3A;"))
    learner = learner_named(db_session, w.school, "Alpha")
    learner.user_id = users.create_user(
        db_session,
        first_name="Ana",
        last_name="Alpha",
        email="ana@example.org",
        password="Ana-Mdp-2026",
    ).id
    import_learners(db_session, w.school, csv_bytes("Beta;Bob;02/02/2010;3A;"))  # Ana left
    db_session.commit()
    assert learner.is_disabled
    sign_in(client, w.member.email)
    token = csrf_token(client, "/orga/eleves")
    response = client.post(f"/orga/eleves/{learner.id}/mot-de-passe", data={"csrf_token": token})
    assert response.status_code == 404
    assert client.get(f"/orga/eleves/{learner.id}/mot-de-passe").status_code == 404
    assert users.authenticate(db_session, "ana@example.org", "Ana-Mdp-2026") is not None
