"""The "Fournisseurs d'identité" section of `/admin`: who reaches it, registering and changing
identity providers, the connection test (a real login whose attributes are shown, nobody signed
in), metadata read again, activation, audit log."""

from __future__ import annotations

import re

import pytest
import responses
from sqlalchemy import func, select

from campaigns.shared.models import AuditEntry, AuthenticationMethod
from sso import registry
from sso.models import SamlIdentityProvider
from tests.conftest import csrf_token
from tests.journey_helpers import STUDENT_PASSWORD, student
from tests.orga_helpers import sign_in, world
from tests.saml_idp import FakeIdp, teacher
from tests.test_admin import instance_admin

OWN = "http://127.0.0.1:5000"


@pytest.fixture
def scene(db_session):
    w = world(db_session)
    admin = instance_admin(db_session)
    idp = registry.add_idp(
        db_session, slug="gar", metadata=FakeIdp().metadata(), organizations=[w.school],
        name="GAR",
    )  # fmt: skip
    db_session.commit()
    return w, admin, idp


def rules(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("saml_admin.")]


def entries(db_session, action=None):
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return list(db_session.scalars(query))


def _post(client, path, data=None):
    token = csrf_token(client, "/admin/fournisseurs-identite/nouveau")
    return client.post(path, data={**(data or {}), "csrf_token": token})


@pytest.mark.parametrize("who", ["visitor", "student", "member", "school admin"])
def test_everyone_but_instance_admins_gets_a_404_on_every_route_and_method(
    app, client, scene, db_session, who
):
    w, _, idp = scene
    if who == "student":
        someone = student(db_session, 9)
        db_session.commit()
        sign_in(client, someone.email, STUDENT_PASSWORD)
    elif who == "member":
        sign_in(client, w.member.email)
    elif who == "school admin":
        sign_in(client, w.admin.email)
    token = csrf_token(client, "/connexion" if who == "visitor" else "/campagnes")
    assert len(rules(app)) == 11
    for rule in rules(app):
        path = rule.build({"idp_id": idp.id} if rule.arguments else {})[1]
        for method in ("GET", "POST"):
            response = client.open(path, method=method, data={"csrf_token": token, "slug": "x"})
            assert response.status_code == 404, f"{who}: {method} {path}"
    assert entries(db_session) == []
    db_session.refresh(idp)
    assert idp.is_active


def test_the_navigation_leads_to_the_section(client, scene):
    _, admin, _ = scene
    sign_in(client, admin.email)
    page = client.get("/admin/fournisseurs-identite").get_data(as_text=True)
    assert 'href="/admin/fournisseurs-identite" aria-current="page"' in page
    assert "GAR" in page and "Collège 0750201A" in page


def test_adding_an_identity_provider_from_pasted_metadata_is_logged(client, scene, db_session):
    _, admin, _ = scene
    sign_in(client, admin.email)
    other = FakeIdp(entity_id="https://idp.academie.example", key_name="academie")
    response = _post(
        client,
        "/admin/fournisseurs-identite/nouveau",
        {
            "slug": "academie",
            "name": "IdP académique",
            "metadata_xml": other.metadata().decode(),
            "mapping": "generic",
            "organizations": "0750202b\n",
        },
    )
    assert response.status_code == 303
    created = registry.find_idp(db_session, "academie")
    assert (
        created.entity_id == "https://idp.academie.example" and created.mapping.value == "generic"
    )
    assert [o.organization_id for o in created.organizations] == [scene[0].other.id]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert (
        f"{OWN}/sso/saml/academie/metadata.xml" in page and f"{OWN}/sso/saml/academie/acs" in page
    )
    assert [e.action for e in entries(db_session)] == ["saml.idp.create"]


@pytest.mark.parametrize(
    ("data", "field", "status"),
    [
        ({"slug": "Pas Bon"}, "slug", 400),
        ({"slug": "gar"}, "slug", 409),
        ({"metadata_xml": "<!DOCTYPE x [<!ENTITY a 'b'>]><x/>"}, "metadata_xml", 400),
        ({"metadata_xml": "", "metadata_url": ""}, "metadata_url", 400),
        ({"metadata_xml": "", "metadata_url": "ftp://idp.example/m"}, "metadata_url", 400),
        ({"organizations": "0750201A\n9999999Z"}, "organizations", 400),
        ({"mapping": "ldap"}, "mapping", 400),
    ],
)
def test_bad_input_is_told_on_its_field(client, scene, db_session, data, field, status):
    _, admin, _ = scene
    sign_in(client, admin.email)
    form = {
        "slug": "nouveau",
        "metadata_xml": FakeIdp(key_name="n").metadata().decode(),
        "mapping": "gar",
        "organizations": "0750201A",
        **data,
    }
    response = _post(client, "/admin/fournisseurs-identite/nouveau", form)
    assert response.status_code == status
    assert f'id="{field}-error"' in response.get_data(as_text=True) or field == "mapping"
    assert db_session.scalar(select(func.count()).select_from(SamlIdentityProvider)) == 1
    assert entries(db_session) == []


def test_editing_and_deactivating_are_logged(client, scene, db_session):
    w, admin, idp = scene
    sign_in(client, admin.email)
    base = f"/admin/fournisseurs-identite/{idp.id}"
    form = client.get(f"{base}/modifier").get_data(as_text=True)
    assert "0750201A" in form
    response = _post(
        client,
        f"{base}/modifier",
        {"name": "GAR Paris", "mapping": "gar", "organizations": "0750201A\n0750202B",
         "allow_idp_initiated": "1", "metadata_url": ""},
    )  # fmt: skip
    assert response.status_code == 303
    db_session.refresh(idp)
    assert idp.name == "GAR Paris" and idp.allow_idp_initiated
    assert registry.organization_ids(db_session, idp) == {w.school.id, w.other.id}
    question = client.get(f"{base}/desactiver")
    assert question.status_code == 200 and "Désactiver GAR Paris" in question.get_data(as_text=True)
    assert _post(client, f"{base}/desactiver").status_code == 303
    db_session.refresh(idp)
    assert not idp.is_active
    assert client.get("/sso/saml/gar/login").status_code == 403  # its logins are refused
    assert [e.action for e in entries(db_session)] == ["saml.idp.update", "saml.idp.deactivate"]


def test_the_connection_test_shows_the_attributes_and_signs_nobody_in(client, scene, db_session):
    _, admin, idp = scene
    sign_in(client, admin.email)
    started = client.get(f"/admin/fournisseurs-identite/{idp.id}/tester")
    assert started.status_code == 302
    request_id, acs, _ = FakeIdp.request_of(started.headers["Location"])
    encoded = FakeIdp().response(
        acs=acs, audience=f"{OWN}/sso/saml/gar/metadata.xml", attributes=teacher(UAI=["0750201A"]),
        in_response_to=request_id,
    )  # fmt: skip
    result = client.post("/sso/saml/gar/acs", data={"SAMLResponse": encoded})
    page = result.get_data(as_text=True)
    assert result.status_code == 200 and "Test de connexion" in page
    assert "gar-ido-prof-42" in page and "National_ens" in page and "enseignant" in page
    # an administration page: its navigation, and the header says where the administrator is
    assert 'aria-label="Administration"' in page
    assert re.search(r'href="/admin" aria-current="true">Administration<', page)
    identities = db_session.scalar(
        select(func.count())
        .select_from(AuthenticationMethod)
        .where(AuthenticationMethod.provider == "SAML")
    )
    assert identities == 0  # nobody signed in or created
    assert client.get("/admin/fournisseurs-identite").status_code == 200  # still the admin


def test_metadata_is_read_again_on_demand_and_a_bad_copy_is_refused(client, scene, db_session):
    _, admin, idp = scene
    idp.metadata_url = "https://idp.gar.example/metadata.xml"
    db_session.commit()
    sign_in(client, admin.email)
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, "https://idp.gar.example/metadata.xml", body=b"<broken")
        response = _post(client, f"/admin/fournisseurs-identite/{idp.id}/metadonnees")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "sont refusées" in page and "dernière version valable" in page
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, "https://idp.gar.example/metadata.xml", body=FakeIdp().metadata())
        response = _post(client, f"/admin/fournisseurs-identite/{idp.id}/metadonnees")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "à jour" in page
    assert [e.action for e in entries(db_session)] == ["saml.idp.refresh"] * 2
    assert re.search(r"Métadonnées", page)


def test_a_persons_data_is_exported_and_erased_on_request(app, client, scene, db_session):
    import datetime as dt
    import json

    from campaigns.shared.models import Learner, User
    from tests.saml_idp import student

    w, admin, idp = scene
    db_session.add(
        Learner(
            organization_id=w.school.id, first_name="Léa", last_name="Martin",
            birthdate=dt.date(2011, 3, 14),
        )
    )  # fmt: skip
    db_session.commit()
    lea = app.test_client()
    started = lea.get("/sso/saml/gar/login")
    request_id, acs, _ = FakeIdp.request_of(started.headers["Location"])
    encoded = FakeIdp().response(
        acs=acs, audience=f"{OWN}/sso/saml/gar/metadata.xml",
        attributes=student(UAI=["0750201A"]), in_response_to=request_id,
    )  # fmt: skip
    assert lea.post("/sso/saml/gar/acs", data={"SAMLResponse": encoded}).status_code == 303
    token = csrf_token(lea, "/sso/rattachement")
    lea.post(
        "/sso/rattachement", data={"csrf_token": token, "day": "14", "month": "3", "year": "2011"}
    )
    learner = db_session.scalars(select(Learner).filter_by(last_name="Martin")).one()
    user_id = learner.user_id
    assert user_id is not None

    sign_in(client, admin.email)
    page = _post(client, f"/admin/fournisseurs-identite/{idp.id}/personne", {"ido": "inconnu"})
    assert page.status_code == 404 and "Aucun compte" in page.get_data(as_text=True)
    page = _post(
        client, f"/admin/fournisseurs-identite/{idp.id}/personne", {"ido": "gar-ido-7f3a9c"}
    )
    assert page.status_code == 200 and "Léa Martin" in page.get_data(as_text=True)
    last_sign_in = db_session.get(User, user_id).last_signed_in_at
    assert last_sign_in.isoformat() not in page.get_data(as_text=True)  # a date people read
    assert re.search(
        r"Dernière connexion</dt><dd>\d\d/\d\d/\d{4} \d\d:\d\d<", page.get_data(as_text=True)
    )
    exported = _post(
        client, f"/admin/fournisseurs-identite/{idp.id}/personne/export", {"ido": "gar-ido-7f3a9c"}
    )
    assert exported.headers["Content-Disposition"].startswith("attachment;")
    data = json.loads(exported.get_data(as_text=True))
    assert data["account"]["first_name"] == "Léa"
    assert data["sign_in_methods"][0]["external_id"] == "gar-ido-7f3a9c"
    assert data["learner_lists"][0]["birthdate"] == "2011-03-14"
    question = _post(
        client, f"/admin/fournisseurs-identite/{idp.id}/personne/effacer", {"ido": "gar-ido-7f3a9c"}
    )
    assert question.status_code == 200 and "définitivement" in question.get_data(as_text=True)
    assert db_session.get(User, user_id) is not None  # not yet
    erased = _post(
        client,
        f"/admin/fournisseurs-identite/{idp.id}/personne/effacer",
        {"ido": "gar-ido-7f3a9c", "confirm": "1"},
    )
    assert erased.status_code == 303
    db_session.expire_all()
    assert db_session.get(User, user_id) is None
    assert db_session.scalars(select(Learner).filter_by(last_name="Martin")).one().user_id is None
    logged = entries(db_session)
    assert [e.action for e in logged] == ["saml.user.export", "saml.user.erase"]
    assert all("gar-ido-7f3a9c" not in json.dumps(e.details) for e in logged)  # a hash only
    assert lea.get("/mes-parcours").status_code == 302  # her session ended with her account


def test_an_account_that_owns_campaigns_is_not_erased(client, scene, db_session):
    from campaigns.shared.models import AuthenticationProvider

    w, admin, idp = scene
    db_session.add(
        AuthenticationMethod(
            user_id=w.admin.id, provider=AuthenticationProvider.SAML, issuer="gar",
            external_id="ido-owner",
        )
    )  # fmt: skip
    db_session.commit()  # the school's admin, owner of its campaigns, also signs in through GAR
    sign_in(client, admin.email)
    erased = _post(
        client,
        f"/admin/fournisseurs-identite/{idp.id}/personne/effacer",
        {"ido": "ido-owner", "confirm": "1"},
    )
    page = client.get(erased.headers["Location"]).get_data(as_text=True)
    assert "a créé des campagnes" in page or "dernier administrateur" in page
    assert db_session.get(type(w.admin), w.admin.id) is not None


def test_erasing_oneself_or_a_campaign_creator_is_refused_with_a_message(client, scene, db_session):
    from campaigns.shared.models import AuthenticationProvider, Campaign

    w, admin, idp = scene
    for user, ido in ((admin, "ido-admin"), (w.member, "ido-member")):
        db_session.add(
            AuthenticationMethod(
                user_id=user.id, provider=AuthenticationProvider.SAML, issuer="gar",
                external_id=ido,
            )
        )  # fmt: skip
    campaign = db_session.scalars(select(Campaign)).first()
    campaign.creator_id = w.member.id  # created by the member, owned by someone else
    db_session.commit()
    sign_in(client, admin.email)
    base = f"/admin/fournisseurs-identite/{idp.id}/personne/effacer"
    mine = _post(client, base, {"ido": "ido-admin", "confirm": "1"})
    assert "propre compte" in client.get(mine.headers["Location"]).get_data(as_text=True)
    creator = _post(client, base, {"ido": "ido-member", "confirm": "1"})
    assert creator.status_code == 303
    assert "a créé des campagnes" in client.get(creator.headers["Location"]).get_data(as_text=True)
    assert entries(db_session) == []  # nothing erased, nothing logged


def test_the_connection_test_says_when_the_school_is_not_served(client, scene, db_session):
    _, admin, idp = scene
    sign_in(client, admin.email)
    started = client.get(f"/admin/fournisseurs-identite/{idp.id}/tester")
    request_id, acs, _ = FakeIdp.request_of(started.headers["Location"])
    encoded = FakeIdp().response(
        acs=acs, audience=f"{OWN}/sso/saml/gar/metadata.xml",
        attributes=teacher(UAI=["0330001X"]), in_response_to=request_id,
    )  # fmt: skip
    page = client.post("/sso/saml/gar/acs", data={"SAMLResponse": encoded}).get_data(as_text=True)
    assert "ne pourrait connecter personne" in page and "0330001X" in page
