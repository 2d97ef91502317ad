"""The campaigns list, the creation form, the edit form, archiving."""

from __future__ import annotations

import re
from html import unescape

import pytest
from markupsafe import escape
from sqlalchemy import select

from campaigns.orga import campaign_admin
from campaigns.shared.models import (
    Campaign,
    CampaignType,
    MembershipRole,
    TargetProfile,
)
from engine.content import load_pack
from tests.conftest import csrf_token, recorded_statements
from tests.journey_helpers import assessment_campaign, profile, student
from tests.orga_helpers import sign_in, take_test, teacher, world

MIXED = "tp-seconde"  # a pack profile of several competences (not a competence profile)


def names_in(page: str) -> list[str]:
    """The campaign names of the list, in order (each is a row header linking to its page)."""
    return re.findall(r'<th scope="row"><a href="[^"]*/orga/campagnes/\d+">([^<]+)</a>', page)


def row_of(page: str, name: str) -> str:
    match = re.search(
        rf"<tr>\s*<th scope=\"row\"><a [^>]*>{re.escape(name)}</a>.*?</tr>", page, re.S
    )
    assert match, f"no row for {name!r}"
    return match.group(0)


def numbers_of(row: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td class="numeric">(\d+)</td>', row)]


def collection(session, organization, owner, name="Collecte 2nde"):
    from campaigns.orga import campaign_admin

    return campaign_admin.create_campaign(
        session,
        organization=organization,
        creator=owner,
        name=name,
        type=CampaignType.PROFILES_COLLECTION,
    )


@pytest.fixture
def w(db_session):
    return world(db_session)


def signed_in(client, db_session, email):
    db_session.commit()
    sign_in(client, email)


def form_data(client, path="/orga/campagnes/nouvelle", **fields):
    data = {
        "csrf_token": csrf_token(client, path),
        "name": "Évaluation 5e C",
        "type": "ASSESSMENT",
        "target_profile_id": "",
        "ask_external_id": "non",
        "external_id_label": "",
        "title": "",
        "landing_text": "",
        "multiple_sendings": "non",
        "owner_id": "",
    }
    data.update({k: str(v) for k, v in fields.items()})
    return data


# -- the list -------------------------------------------------------------------------------------


def test_the_list_is_alphabetical_ignoring_case_and_accents(client, db_session, w):
    for name in ("zoologie", "Éducation aux médias", "algorithmique", "Bureautique"):
        assessment_campaign(db_session, w.school, w.admin, name=name)
    assessment_campaign(db_session, w.other, w.other_admin, name="Ailleurs")
    signed_in(client, db_session, w.member.email)
    page = client.get("/orga/campagnes").get_data(as_text=True)
    assert names_in(page) == [
        "algorithmique",
        "Bureautique",
        "Éducation aux médias",
        "Évaluation 3e A",
        "Évaluation 4e B",
        "zoologie",
    ]
    assert "Autre collège" not in page and "Ailleurs" not in page
    assert f'href="/orga/campagnes/{w.campaign.id}"' in page


def test_each_row_shows_code_type_owner_date_participants_and_results(client, db_session, w):
    first = student(db_session, 1)
    take_test(db_session, w.campaign, first, seed=1)  # shared
    take_test(db_session, w.campaign, student(db_session, 2), seed=2, share=False)  # to share
    take_test(db_session, w.campaign, student(db_session, 3), answers=2)  # started
    deleted = take_test(db_session, w.campaign, student(db_session, 4), seed=4)
    deleted.deleted_at = deleted.shared_at  # a deleted participation does not count
    take_test(db_session, w.member_campaign, first, seed=5, share=False)
    collect = collection(db_session, w.school, w.member)
    signed_in(client, db_session, w.admin.email)
    page = client.get("/orga/campagnes").get_data(as_text=True)

    row = row_of(page, "Évaluation 3e A")
    assert w.campaign.code in row and "Évaluation" in row and "Alice Admin" in row
    assert re.search(r"\d\d/\d\d/\d{4}", row)
    assert numbers_of(row) == [3, 1]
    assert numbers_of(row_of(page, "Évaluation 4e B")) == [1, 0]
    collect_row = row_of(page, "Collecte 2nde")
    assert "Collecte de profils" in collect_row and collect.code in collect_row
    assert numbers_of(collect_row) == [0, 0]


def test_improved_participations_are_not_counted_twice(client, db_session, w):
    campaign = assessment_campaign(
        db_session, w.school, w.admin, name="Multi", multiple_sendings=True
    )
    someone = student(db_session, 1)
    first = take_test(db_session, campaign, someone, seed=1)
    first.is_improved = True
    db_session.flush()
    take_test(db_session, campaign, someone, seed=2, answers=1)
    signed_in(client, db_session, w.admin.email)
    page = client.get("/orga/campagnes").get_data(as_text=True)
    assert numbers_of(row_of(page, "Multi")) == [1, 0]


def test_the_list_reads_participations_in_one_statement(client, db_session, w, connection):
    for n in range(12):
        campaign = assessment_campaign(db_session, w.school, w.admin, name=f"Campagne {n:02}")
        if n % 3 == 0:
            take_test(db_session, campaign, student(db_session, n + 1), seed=n, answers=1)
    signed_in(client, db_session, w.admin.email)
    with recorded_statements(connection) as statements:
        page = client.get("/orga/campagnes").get_data(as_text=True)
    assert len([s for s in statements if "participations" in s]) == 1
    assert numbers_of(row_of(page, "Campagne 03")) == [1, 0]
    assert numbers_of(row_of(page, "Campagne 04")) == [0, 0]


def test_search_by_name_or_code_ignores_case_and_accents(client, db_session, w):
    assessment_campaign(db_session, w.school, w.admin, name="Sécurité 100% en ligne")
    signed_in(client, db_session, w.member.email)
    page = client.get("/orga/campagnes?q=EVALUATION").get_data(as_text=True)
    assert names_in(page) == ["Évaluation 3e A", "Évaluation 4e B"]
    page = client.get(f"/orga/campagnes?q={w.campaign.code.lower()}").get_data(as_text=True)
    assert names_in(page) == ["Évaluation 3e A"]
    assert names_in(client.get("/orga/campagnes?q=securite").get_data(as_text=True)) == [
        "Sécurité 100% en ligne"
    ]
    assert names_in(client.get("/orga/campagnes?q=0%25").get_data(as_text=True)) == [
        "Sécurité 100% en ligne"
    ]
    empty = client.get("/orga/campagnes?q=introuvable").get_data(as_text=True)
    assert names_in(empty) == []
    assert "Aucune campagne active ne correspond" in empty
    assert 'href="/orga/campagnes/nouvelle"' in empty
    assert 'value="introuvable"' in empty  # the search box keeps the term


def test_my_campaigns_and_archived_filters(client, db_session, w):
    archived = assessment_campaign(db_session, w.school, w.member, name="Ancienne", owner=w.member)
    campaign_admin.archive(db_session, archived, w.member)
    signed_in(client, db_session, w.member.email)
    assert names_in(client.get("/orga/campagnes").get_data(as_text=True)) == [
        "Évaluation 3e A",
        "Évaluation 4e B",
    ]
    mine = client.get("/orga/campagnes?owner=me").get_data(as_text=True)
    assert names_in(mine) == ["Évaluation 4e B"]
    assert 'id="owner-me" name="owner" value="me" checked' in mine
    archived_page = client.get("/orga/campagnes?status=archived").get_data(as_text=True)
    assert names_in(archived_page) == ["Ancienne"]
    assert "Désarchiver" in archived_page
    assert names_in(client.get("/orga/campagnes?status=archived&owner=me&q=anc").text) == [
        "Ancienne"
    ]


def test_the_list_is_paginated_and_keeps_the_filters(client, db_session, w):
    for n in range(30):
        assessment_campaign(db_session, w.school, w.member, name=f"Classe {n:02}", owner=w.member)
    signed_in(client, db_session, w.member.email)
    first = client.get("/orga/campagnes?owner=me").get_data(as_text=True)
    assert names_in(first) == [f"Classe {n:02}" for n in range(25)]
    assert "Page 1 sur 2" in first
    assert "31 campagnes actives" in first
    links = re.findall(r'href="([^"]*page=2[^"]*)"', first)
    assert links and "owner=me" in links[0]
    second = client.get(links[0].replace("&amp;", "&")).get_data(as_text=True)
    assert names_in(second) == [f"Classe {n:02}" for n in range(25, 30)] + ["Évaluation 4e B"]
    assert "Page 2 sur 2" in second and "Page suivante" not in second
    # A page past the end shows the last one; nonsense shows the first.
    assert "Page 2 sur 2" in client.get("/orga/campagnes?owner=me&page=99").text
    assert "Page 1 sur 2" in client.get("/orga/campagnes?owner=me&page=-3").text


def test_an_organization_without_campaigns_is_invited_to_create_one(client, db_session):
    from tests.journey_helpers import school

    organization, _admin = school(db_session, uai="0750999Z")
    teacher(db_session, organization, email="seul@example.org")
    signed_in(client, db_session, "seul@example.org")
    page = client.get("/orga/campagnes").get_data(as_text=True)
    assert "n’a pas encore de campagne" in page
    assert 'href="/orga/campagnes/nouvelle"' in page
    assert "<table" not in page


# -- creation -------------------------------------------------------------------------------------


def test_the_creation_form_offers_public_and_own_profiles_and_the_members(client, db_session, w):
    own = TargetProfile(name="Profil maison", organization_id=w.school.id)
    foreign = TargetProfile(name="Profil d’ailleurs", organization_id=w.other.id)
    retired = TargetProfile(name="Profil retiré", is_archived=True)
    db_session.add_all([own, foreign, retired])
    signed_in(client, db_session, w.member.email)
    page = client.get("/orga/campagnes/nouvelle").get_data(as_text=True)
    assert "Profil maison" in page and str(escape(profile(db_session, MIXED).name)) in page
    assert "Profil d’ailleurs" not in page and "Profil retiré" not in page
    owners = re.search(r'<select id="owner_id".*?</select>', page, re.S).group(0)
    assert f'<option value="{w.member.id}" selected>' in owners  # me by default
    assert f'<option value="{w.admin.id}">' in owners
    assert f'<option value="{w.other_admin.id}"' not in owners
    assert 'maxlength="5000"' in page and "5000 caractères maximum" in page
    assert 'name="csrf_token"' in page


def test_a_teacher_creates_an_assessment_campaign(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    target = profile(db_session, MIXED)
    response = client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(
            client,
            name="  Évaluation   5e C ",
            target_profile_id=target.id,
            ask_external_id="oui",
            external_id_label="Numéro d’élève",
            title="Parcours de rentrée",
            landing_text="Bonjour !\r\nBon courage.",
            multiple_sendings="oui",
            owner_id=w.admin.id,
        ),
    )
    assert response.status_code == 302
    campaign = db_session.scalars(select(Campaign).where(Campaign.name == "Évaluation 5e C")).one()
    assert response.headers["Location"].endswith(f"/orga/campagnes/{campaign.id}")
    assert campaign.organization_id == w.school.id
    assert campaign.type is CampaignType.ASSESSMENT
    assert campaign.target_profile_id == target.id and campaign.skills
    assert campaign.external_id_label == "Numéro d’élève"
    assert campaign.title == "Parcours de rentrée"
    assert campaign.landing_text == "Bonjour !\nBon courage."
    assert campaign.multiple_sendings is True
    assert campaign.owner_id == w.admin.id and campaign.creator_id == w.member.id
    assert re.fullmatch(r"[A-Z]{6}\d{3}", campaign.code)


def test_a_teacher_creates_a_profiles_collection(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    response = client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(
            client,
            name="Collecte 3e",
            type="PROFILES_COLLECTION",
            title="ignoré pour une collecte",
            owner_id=w.member.id,
        ),
    )
    assert response.status_code == 302
    campaign = db_session.scalars(select(Campaign).where(Campaign.name == "Collecte 3e")).one()
    assert campaign.type is CampaignType.PROFILES_COLLECTION
    assert campaign.target_profile_id is None and campaign.title is None
    assert campaign.external_id_label is None and campaign.multiple_sendings is False
    assert campaign.owner_id == w.member.id


def campaigns_count(db_session) -> int:
    return len(db_session.scalars(select(Campaign.id)).all())


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "   "}, "name", "Saisissez le nom de la campagne."),
        ({"name": "x" * 256}, "name", "limité à 255 caractères"),
        ({"type": ""}, "type", "Choisissez l’objectif de la campagne."),
        ({"type": "EXAM"}, "type", "Ce type de campagne n’existe pas."),
        ({"target_profile_id": ""}, "target", "Choisissez ce que la campagne doit tester."),
        (
            {"type": "PROFILES_COLLECTION", "target_profile_id": "PROFILE"},
            "target_profile_id",
            "Une collecte de profils ne teste pas de profil cible",
        ),
        ({"target_profile_id": "999999"}, "target_profile_id", "n’existe pas ou n’est pas"),
        ({"target_profile_id": "abc"}, "target_profile_id", "n’existe pas ou n’est pas"),
        ({"ask_external_id": "oui"}, "external_id_label", "Saisissez le libellé"),
        (
            {"ask_external_id": "oui", "external_id_label": "y" * 256},
            "external_id_label",
            "limité à 255 caractères",
        ),
        ({"ask_external_id": "peut-être"}, "ask_external_id", "Répondez par oui ou par non."),
        ({"title": "t" * 256}, "title", "Le titre du parcours est limité"),
        ({"landing_text": "a" * 5001}, "landing_text", "limité à 5000 caractères"),
        ({"multiple_sendings": "2"}, "multiple_sendings", "Répondez par oui ou par non."),
        ({"owner_id": "OTHER"}, "owner_id", "Choisissez un membre de votre organisation."),
        ({"owner_id": "999999"}, "owner_id", "Choisissez un membre de votre organisation."),
        ({"owner_id": "x"}, "owner_id", "Choisissez un membre de votre organisation."),
    ],
)
def test_invalid_creation_forms_are_shown_again_with_the_error(
    client, db_session, w, fields, field, message
):
    signed_in(client, db_session, w.member.email)
    before = campaigns_count(db_session)
    defaults = {"target_profile_id": profile(db_session, MIXED).id, "owner_id": w.member.id}
    fields = {
        **defaults,
        **{
            k: {"PROFILE": profile(db_session, MIXED).id, "OTHER": w.other_admin.id}.get(v, v)
            for k, v in fields.items()
        },
    }
    data = form_data(client, **{"title": "Mon titre gardé", **fields})
    response = client.post("/orga/campagnes/nouvelle", data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert f'id="{field}-error"' in page
    assert re.search(rf'id="{field}(-[a-z]+)?"[^>]*aria-describedby="[^"]*{field}-error', page) or (
        re.search(rf'<fieldset id="{field}"[^>]*aria-describedby="[^"]*{field}-error', page)
    )
    assert 'aria-invalid="true"' in page
    assert 'role="alert"' in page and f'href="#{field}"' in page
    if field != "title":
        assert 'value="Mon titre gardé"' in page  # what was typed is kept
    assert campaigns_count(db_session) == before


def test_a_profile_of_another_organization_or_archived_cannot_be_used(client, db_session, w):
    foreign = TargetProfile(name="Profil d’ailleurs", organization_id=w.other.id)
    retired = TargetProfile(name="Profil retiré", is_archived=True)
    db_session.add_all([foreign, retired])
    signed_in(client, db_session, w.member.email)
    before = campaigns_count(db_session)
    for tampered in (foreign, retired):
        response = client.post(
            "/orga/campagnes/nouvelle",
            data=form_data(client, target_profile_id=tampered.id, owner_id=w.member.id),
        )
        assert response.status_code == 400
        assert "n’est pas disponible pour votre organisation" in response.text
    assert campaigns_count(db_session) == before


def test_several_errors_are_all_reported(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    response = client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(client, name="", type="", landing_text="a" * 5001, owner_id=w.member.id),
    )
    assert response.status_code == 400
    assert "Le formulaire contient 3 erreurs" in response.text
    summary = response.text.index
    assert summary('href="#name"') < summary('href="#type"') < summary('href="#landing_text"')
    assert "a" * 5001 in response.text  # the long text is kept so that it can be shortened


def test_creating_without_csrf_token_is_refused(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    data = form_data(client, target_profile_id=profile(db_session, MIXED).id, owner_id=w.member.id)
    del data["csrf_token"]
    before = campaigns_count(db_session)
    assert client.post("/orga/campagnes/nouvelle", data=data).status_code == 400
    assert campaigns_count(db_session) == before


# -- creation: a target profile or one competence -------------------------------------------------

PACK = load_pack()


def select_of(page: str, name: str) -> str:
    match = re.search(rf'<select id="{name}".*?</select>', page, re.S)
    assert match, f"no select {name!r}"
    return match.group(0)


def options_of(select: str) -> list[tuple[str, str]]:
    """(value, text) of each option but the empty one, in order."""
    return [
        (value, unescape(text).strip())
        for value, text in re.findall(r'<option value="([^"]+)"[^>]*>([^<]*)</option>', select)
    ]


def test_the_form_offers_a_target_profile_or_one_competence(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    page = client.get("/orga/campagnes/nouvelle").text
    group = re.search(r'<fieldset id="target".*?</fieldset>', page, re.S).group(0)
    assert "<legend" in group and "Que souhaitez-vous tester" in group
    assert '<label for="target_profile_id">Un profil cible</label>' in group
    assert '<label for="competence_id">Une compétence</label>' in group
    assert 'aria-describedby="target-help"' in group and 'id="target-help"' in group

    # The profiles: the pack's mixed profiles, never a competence profile.
    profiles = [text for _value, text in options_of(select_of(page, "target_profile_id"))]
    assert profile(db_session, MIXED).name in profiles
    assert profile(db_session, "tp-cycle4").name in profiles
    for competence in PACK.competences:
        assert profile(db_session, f"tp-competence-{competence.id}").name not in profiles
    assert not [name for name in profiles if re.match(r"\d\.\d ", name)]

    # The competences: all 16, in the pack's order, grouped by area.
    competences = select_of(page, "competence_id")
    assert options_of(competences) == [(c.id, f"{c.id} {c.title}") for c in PACK.competences]
    assert ("1.1", "1.1 Mener une recherche et une veille d’information") in options_of(competences)
    areas = [unescape(label) for label in re.findall(r'<optgroup label="([^"]+)"', competences)]
    assert areas == [area.title for area in PACK.areas]


def skill_ids_of(competence_id: str) -> set[str]:
    competence = PACK.competence_by_id[competence_id]
    return {skill.id for tube in competence.tubes for skill in tube.skills}


def test_a_teacher_creates_a_campaign_on_one_competence(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    response = client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(client, name="Recherche 5e C", competence_id="1.1", owner_id=w.member.id),
    )
    assert response.status_code == 302
    campaign = db_session.scalars(select(Campaign).where(Campaign.name == "Recherche 5e C")).one()
    assert campaign.type is CampaignType.ASSESSMENT
    assert campaign.target_profile_id == profile(db_session, "tp-competence-1.1").id
    assert {s.skill_id for s in campaign.skills} == skill_ids_of("1.1")
    assert not skill_ids_of("1.1") & skill_ids_of("1.2")  # the check above means something

    # The edit form says what is tested, read-only.
    page = client.get(f"/orga/campagnes/{campaign.id}/modifier").text
    facts = re.search(r'<dl class="campaign-facts">.*?</dl>', page, re.S).group(0)
    assert "Compétence testée" in facts and "Profil cible" not in facts
    assert str(escape("1.1 Mener une recherche et une veille d’information")) in facts
    assert "Informations et données" in facts
    assert "la compétence testée sont fixés" in page
    assert 'name="competence_id"' not in page and 'name="target_profile_id"' not in page


def test_the_edit_form_of_a_profile_campaign_names_the_profile(client, db_session, w):
    campaign = assessment_campaign(db_session, w.school, w.admin, key=MIXED, name="Seconde")
    signed_in(client, db_session, w.admin.email)
    page = client.get(f"/orga/campagnes/{campaign.id}/modifier").text
    facts = re.search(r'<dl class="campaign-facts">.*?</dl>', page, re.S).group(0)
    assert "Profil cible" in facts and "Compétence testée" not in facts
    assert str(escape(profile(db_session, MIXED).name)) in facts


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"target_profile_id": "PROFILE", "competence_id": "1.1"},
            "target",
            "Choisissez un profil cible ou une compétence, pas les deux",
        ),
        ({"competence_id": "9.9"}, "competence_id", "Cette compétence n’existe pas"),
        ({"competence_id": "1.1 "}, "competence_id", "Cette compétence n’existe pas"),
        ({"competence_id": "tp-competence-1.1"}, "competence_id", "Cette compétence n’existe pas"),
        (
            {"type": "PROFILES_COLLECTION", "competence_id": "1.1"},
            "competence_id",
            "Une collecte de profils ne teste pas de compétence",
        ),
        # A competence profile is chosen as a competence, not as a profile.
        ({"target_profile_id": "COMPETENCE"}, "target_profile_id", "n’existe pas ou n’est pas"),
    ],
)
def test_what_to_test_is_checked(client, db_session, w, fields, field, message):
    signed_in(client, db_session, w.member.email)
    before = campaigns_count(db_session)
    aliases = {
        "PROFILE": profile(db_session, MIXED).id,
        "COMPETENCE": profile(db_session, "tp-competence-1.1").id,
    }
    fields = {k: aliases.get(v, v) for k, v in fields.items()}
    data = form_data(client, **{"title": "Mon titre gardé", "owner_id": w.member.id, **fields})
    response = client.post("/orga/campagnes/nouvelle", data=data)
    assert response.status_code == 400
    page = response.text
    assert message in page
    assert f'id="{field}-error"' in page and f'href="#{field}"' in page
    if field == "target":  # the pair is wrong: the group carries the error, both fields invalid
        assert (
            '<fieldset id="target" tabindex="-1" aria-describedby="target-help target-error"'
            in page
        )
        for name in ("target_profile_id", "competence_id"):  # the help and error reach each select
            assert "target-help" in select_of(page, name) and "target-error" in select_of(
                page, name
            )
        assert 'aria-invalid="true"' in select_of(page, "target_profile_id")
        assert 'aria-invalid="true"' in select_of(page, "competence_id")
    else:
        select = select_of(page, field)
        assert 'aria-invalid="true"' in select and f"{field}-error" in select
    assert 'value="Mon titre gardé"' in page
    assert campaigns_count(db_session) == before


def test_both_choices_are_redisplayed_as_typed(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    mixed = profile(db_session, MIXED)
    response = client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(client, target_profile_id=mixed.id, competence_id="2.3", owner_id="x"),
    )
    assert response.status_code == 400
    page = response.text
    assert f'<option value="{mixed.id}" selected>' in select_of(page, "target_profile_id")
    assert '<option value="2.3" selected>' in select_of(page, "competence_id")

    # Another field wrong: the competence chosen is kept, and the pair raises no error.
    response = client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(client, name="", competence_id="3.4", owner_id=w.member.id),
    )
    page = response.text
    assert "Saisissez le nom de la campagne." in page and 'id="target-error"' not in page
    assert '<option value="3.4" selected>' in select_of(page, "competence_id")
    assert " selected>" not in select_of(page, "target_profile_id")


def test_a_competence_without_its_profile_is_not_offered(client, db_session, w):
    retired = profile(db_session, "tp-competence-2.1")
    retired.is_archived = True
    signed_in(client, db_session, w.member.email)
    page = client.get("/orga/campagnes/nouvelle").text
    offered = [value for value, _text in options_of(select_of(page, "competence_id"))]
    assert "2.1" not in offered and "2.2" in offered and len(offered) == 15
    assert retired.name not in page  # not offered as a profile either
    before = campaigns_count(db_session)
    response = client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(client, competence_id="2.1", owner_id=w.member.id),
    )
    assert response.status_code == 400 and 'id="competence_id-error"' in response.text
    assert campaigns_count(db_session) == before


def test_an_organization_profile_of_one_competence_stays_a_profile(client, db_session, w):
    """Competence profiles come from the pack's specification, not from names: a profile of the
    organization named like a competence is an ordinary profile."""
    own = TargetProfile(name="1.1 Notre version", organization_id=w.school.id)
    db_session.add(own)
    signed_in(client, db_session, w.member.email)
    page = client.get("/orga/campagnes/nouvelle").text
    assert (str(own.id), "1.1 Notre version (profil de votre organisation)") in options_of(
        select_of(page, "target_profile_id")
    )


# -- edit -----------------------------------------------------------------------------------------


def edit_data(client, campaign, **fields):
    path = f"/orga/campagnes/{campaign.id}/modifier"
    data = {
        "csrf_token": csrf_token(client, path),
        "name": campaign.name,
        "title": campaign.title or "",
        "landing_text": campaign.landing_text or "",
        "ask_external_id": "oui" if campaign.external_id_label else "non",
        "external_id_label": campaign.external_id_label or "",
        "multiple_sendings": "oui" if campaign.multiple_sendings else "non",
        "owner_id": str(campaign.owner_id),
    }
    data.update({k: str(v) for k, v in fields.items()})
    return data


def test_the_owner_edits_a_campaign(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    page = client.get(f"/orga/campagnes/{w.member_campaign.id}/modifier").text
    assert 'value="Évaluation 4e B"' in page
    assert str(escape(profile(db_session).name)) in page and "fixés à la création" in page
    assert 'name="type"' not in page and 'name="target_profile_id"' not in page
    response = client.post(
        f"/orga/campagnes/{w.member_campaign.id}/modifier",
        data=edit_data(
            client,
            w.member_campaign,
            name="Évaluation 4e B (bis)",
            title="Nouveau titre",
            landing_text="Lisez bien.",
            ask_external_id="oui",
            external_id_label="INE",
            multiple_sendings="oui",
            owner_id=w.admin.id,
            # Tampering with what cannot change does nothing.
            type="PROFILES_COLLECTION",
            target_profile_id="",
        ),
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/orga/campagnes/{w.member_campaign.id}")
    db_session.refresh(w.member_campaign)
    c = w.member_campaign
    assert (c.name, c.title, c.landing_text, c.external_id_label) == (
        "Évaluation 4e B (bis)",
        "Nouveau titre",
        "Lisez bien.",
        "INE",
    )
    assert c.multiple_sendings is True and c.owner_id == w.admin.id
    assert c.type is CampaignType.ASSESSMENT and c.target_profile_id == profile(db_session).id


def test_removing_the_external_id_clears_its_label(client, db_session, w):
    w.campaign.external_id_label = "Numéro d’élève"
    signed_in(client, db_session, w.admin.email)
    response = client.post(
        f"/orga/campagnes/{w.campaign.id}/modifier",
        data=edit_data(client, w.campaign, ask_external_id="non"),
    )
    assert response.status_code == 302
    db_session.refresh(w.campaign)
    assert w.campaign.external_id_label is None


def test_multiple_sendings_are_locked_once_someone_participated(client, db_session, w):
    take_test(db_session, w.campaign, student(db_session, 1), answers=1)
    signed_in(client, db_session, w.admin.email)
    page = client.get(f"/orga/campagnes/{w.campaign.id}/modifier").text
    assert re.search(r'id="multiple_sendings-oui"[^>]*disabled', page)
    assert "1 participant a déjà rejoint la campagne" in page
    # A disabled field is not sent: the rest of the form still saves.
    data = edit_data(client, w.campaign, name="Renommée")
    del data["multiple_sendings"]
    assert client.post(f"/orga/campagnes/{w.campaign.id}/modifier", data=data).status_code == 302
    db_session.refresh(w.campaign)
    assert w.campaign.name == "Renommée" and w.campaign.multiple_sendings is False
    # Forcing it anyway is refused.
    response = client.post(
        f"/orga/campagnes/{w.campaign.id}/modifier",
        data=edit_data(client, w.campaign, name="Autre nom", multiple_sendings="oui"),
    )
    assert response.status_code == 400
    assert "l’envoi multiple ne peut plus changer" in response.text
    db_session.refresh(w.campaign)
    assert w.campaign.multiple_sendings is False and w.campaign.name == "Renommée"


def test_edit_errors_are_shown_with_the_values_kept(client, db_session, w):
    signed_in(client, db_session, w.admin.email)
    response = client.post(
        f"/orga/campagnes/{w.campaign.id}/modifier",
        data=edit_data(client, w.campaign, name="", title="Titre tapé", owner_id=w.other_admin.id),
    )
    assert response.status_code == 400
    assert "Saisissez le nom de la campagne." in response.text
    assert "Choisissez un membre de votre organisation." in response.text
    assert 'value="Titre tapé"' in response.text
    db_session.refresh(w.campaign)
    assert w.campaign.name == "Évaluation 3e A" and w.campaign.owner_id == w.admin.id


def test_a_collection_has_no_title_to_edit(client, db_session, w):
    collect = collection(db_session, w.school, w.admin)
    signed_in(client, db_session, w.admin.email)
    page = client.get(f"/orga/campagnes/{collect.id}/modifier").text
    assert 'name="title"' not in page and "Collecte de profils" in page
    response = client.post(
        f"/orga/campagnes/{collect.id}/modifier", data=edit_data(client, collect, title="x")
    )
    assert response.status_code == 302
    db_session.refresh(collect)
    assert collect.title is None


def test_an_archived_campaign_is_not_edited(client, db_session, w):
    campaign_admin.archive(db_session, w.campaign, w.admin)
    signed_in(client, db_session, w.admin.email)
    page = client.get(f"/orga/campagnes/{w.campaign.id}/modifier")
    assert page.status_code == 200
    assert "Cette campagne est archivée" in page.text and 'name="name"' not in page.text
    token = csrf_token(client, f"/orga/campagnes/{w.campaign.id}/modifier")
    response = client.post(
        f"/orga/campagnes/{w.campaign.id}/modifier",
        data={"csrf_token": token, "name": "Changée", "owner_id": w.admin.id},
    )
    assert response.status_code == 409
    db_session.refresh(w.campaign)
    assert w.campaign.name == "Évaluation 3e A"


def test_a_member_cannot_edit_or_archive_the_admins_campaign(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    path = f"/orga/campagnes/{w.campaign.id}"
    refused = client.get(f"{path}/modifier")
    assert refused.status_code == 403
    assert "Seuls le propriétaire de la campagne et les administrateurs" in refused.text
    token = csrf_token(client, "/orga/campagnes")
    data = {"csrf_token": token, "name": "Volée", "owner_id": w.member.id}
    assert client.post(f"{path}/modifier", data=data).status_code == 403
    assert client.post(f"{path}/archiver", data={"csrf_token": token}).status_code == 403
    campaign_admin.archive(db_session, w.campaign, w.admin)
    db_session.commit()
    assert client.post(f"{path}/desarchiver", data={"csrf_token": token}).status_code == 403
    db_session.refresh(w.campaign)
    assert w.campaign.name == "Évaluation 3e A" and w.campaign.archived_at is not None


def test_an_admin_edits_and_archives_a_members_campaign(client, db_session, w):
    signed_in(client, db_session, w.admin.email)
    path = f"/orga/campagnes/{w.member_campaign.id}"
    assert client.get(f"{path}/modifier").status_code == 200
    token = csrf_token(client, "/orga/campagnes")
    assert client.post(f"{path}/archiver", data={"csrf_token": token}).status_code == 302


def test_a_member_does_not_see_the_unarchive_button_of_others_campaigns(client, db_session, w):
    campaign_admin.archive(db_session, w.campaign, w.admin)
    campaign_admin.archive(db_session, w.member_campaign, w.member)
    signed_in(client, db_session, w.member.email)
    page = client.get("/orga/campagnes?status=archived").text
    assert f"/orga/campagnes/{w.member_campaign.id}/desarchiver" in page
    assert f"/orga/campagnes/{w.campaign.id}/desarchiver" not in page


# -- archive --------------------------------------------------------------------------------------


def test_archiving_moves_the_campaign_to_the_archived_list_and_back(client, db_session, w):
    signed_in(client, db_session, w.member.email)
    token = csrf_token(client, "/orga/campagnes")
    path = f"/orga/campagnes/{w.member_campaign.id}"
    response = client.post(f"{path}/archiver", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith(path)
    db_session.refresh(w.member_campaign)
    assert w.member_campaign.archived_at is not None
    assert w.member_campaign.archived_by_id == w.member.id
    assert names_in(client.get("/orga/campagnes").text) == ["Évaluation 3e A"]
    assert names_in(client.get("/orga/campagnes?status=archived").text) == ["Évaluation 4e B"]

    response = client.post(
        f"{path}/desarchiver",
        data={"csrf_token": token, "next": "/orga/campagnes?status=archived"},
    )
    assert response.headers["Location"].endswith("/orga/campagnes?status=archived")
    db_session.refresh(w.member_campaign)
    assert w.member_campaign.archived_at is None and w.member_campaign.archived_by_id is None
    assert names_in(client.get("/orga/campagnes").text) == ["Évaluation 3e A", "Évaluation 4e B"]


def test_archive_does_not_follow_a_next_url_off_site(client, db_session, w):
    signed_in(client, db_session, w.admin.email)
    token = csrf_token(client, "/orga/campagnes")
    response = client.post(
        f"/orga/campagnes/{w.campaign.id}/archiver",
        data={"csrf_token": token, "next": "https://evil.example/"},
    )
    assert response.headers["Location"].endswith(f"/orga/campagnes/{w.campaign.id}")


def test_archive_and_unarchive_need_the_csrf_token(client, db_session, w):
    signed_in(client, db_session, w.admin.email)
    for action in ("archiver", "desarchiver"):
        response = client.post(f"/orga/campagnes/{w.campaign.id}/{action}", data={})
        assert response.status_code == 400
    db_session.refresh(w.campaign)
    assert w.campaign.archived_at is None


def test_edit_without_csrf_token_is_refused(client, db_session, w):
    signed_in(client, db_session, w.admin.email)
    response = client.post(
        f"/orga/campagnes/{w.campaign.id}/modifier", data={"name": "x", "owner_id": w.admin.id}
    )
    assert response.status_code == 400


# -- other organizations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", "/modifier"), ("post", "/modifier"), ("post", "/archiver"), ("post", "/desarchiver")],
)
def test_another_organizations_campaign_is_not_found(client, db_session, w, method, suffix):
    signed_in(client, db_session, w.admin.email)  # an admin, even
    token = csrf_token(client, "/orga/campagnes")
    path = f"/orga/campagnes/{w.other_campaign.id}{suffix}"
    data = {"csrf_token": token, "name": "x", "owner_id": w.admin.id}
    response = client.get(path) if method == "get" else client.post(path, data=data)
    assert response.status_code == 404
    db_session.refresh(w.other_campaign)
    assert w.other_campaign.name == "Autre collège" and w.other_campaign.archived_at is None


def test_a_campaign_is_created_in_the_current_organization_only(client, db_session, w):
    both = teacher(db_session, w.other, email="membre@example.org", role=MembershipRole.MEMBER)
    signed_in(client, db_session, both.email)
    client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(client, competence_id="4.3", owner_id=w.admin.id),
    )
    created = db_session.scalars(select(Campaign).where(Campaign.name == "Évaluation 5e C")).one()
    assert created.organization_id == w.school.id
    # The other organization's admin is not a member of this one: cannot own its campaign.
    response = client.post(
        "/orga/campagnes/nouvelle",
        data=form_data(
            client,
            name="X",
            target_profile_id=profile(db_session, MIXED).id,
            owner_id=w.other_admin.id,
        ),
    )
    assert response.status_code == 400
    assert db_session.scalars(select(Campaign).where(Campaign.name == "X")).all() == []
