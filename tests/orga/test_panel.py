"""The panel's shell: who gets in, terms of use, organization switcher, navigation."""

from campaigns.shared.models import MembershipRole
from tests.conftest import csrf_token
from tests.orga_helpers import TEACHER_PASSWORD, sign_in, teacher, world


def test_visitors_are_sent_to_sign_in_and_back(client):
    response = client.get("/orga/documentation")
    assert response.status_code == 302
    assert "/connexion?next=/orga/documentation" in response.headers["Location"]


def test_a_student_is_told_the_panel_is_for_members(client, db_session):
    from tests.journey_helpers import STUDENT_PASSWORD, student

    student(db_session)
    db_session.commit()
    sign_in(client, "eleve1@example.org", STUDENT_PASSWORD)
    response = client.get("/orga/documentation")
    assert response.status_code == 403
    assert "membre d’aucune organisation" in response.get_data(as_text=True)


def test_terms_of_use_are_accepted_once_before_the_first_visit(client, db_session):
    w = world(db_session)
    newcomer = teacher(db_session, w.school, email="nouveau@example.org", terms=False)
    db_session.commit()
    sign_in(client, "nouveau@example.org")
    response = client.get("/orga/documentation")
    assert response.status_code == 302
    assert "/orga/cgu" in response.headers["Location"]
    token = csrf_token(client, "/orga/cgu")
    refused = client.post("/orga/cgu", data={"csrf_token": token})
    assert refused.status_code == 400
    accepted = client.post(
        "/orga/cgu", data={"csrf_token": token, "accept": "1", "next": "/orga/documentation"}
    )
    assert accepted.headers["Location"].endswith("/orga/documentation")
    db_session.refresh(newcomer)
    assert newcomer.cgu_accepted_at is not None
    assert client.get("/orga/documentation").status_code == 200


def test_members_of_several_organizations_switch_between_them(client, db_session):
    w = world(db_session)
    both = teacher(db_session, w.school, email="deux@example.org")
    teacher(db_session, w.other, email="deux@example.org", role=MembershipRole.ADMIN)
    db_session.commit()
    sign_in(client, both.email)
    page = client.get("/orga/documentation").get_data(as_text=True)
    assert w.school.name in page and 'name="organization_id"' in page
    token = csrf_token(client, "/orga/documentation")
    client.post("/orga/organisation", data={"csrf_token": token, "organization_id": w.other.id})
    page = client.get("/orga/documentation").get_data(as_text=True)
    assert f'value="{w.other.id}" selected' in page


def test_switching_to_an_organization_one_is_not_a_member_of_is_refused(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.member.email)
    token = csrf_token(client, "/orga/documentation")
    response = client.post(
        "/orga/organisation", data={"csrf_token": token, "organization_id": w.other.id}
    )
    assert response.status_code == 404


def test_the_documentation_explains_campaigns_codes_sharing_and_exports(client, db_session):
    w = world(db_session)
    db_session.commit()
    sign_in(client, w.member.email, TEACHER_PASSWORD)
    page = client.get("/orga/documentation").get_data(as_text=True)
    for heading in ("Les campagnes", "Codes et liens", "L’envoi des résultats", "Les exports"):
        assert heading in page
    assert 'aria-current="page"' in page
