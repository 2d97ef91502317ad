"""A campaign's page as teachers see it: header, Activité, Participants, a participant, Résultats
collectifs, Analyse — with participants who really took the test."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from campaigns.accounts import users
from campaigns.journey import services as journey
from campaigns.orga import campaign_admin
from campaigns.shared.models import (
    Assessment,
    CampaignType,
    KnowledgeElement,
    KnowledgeElementSource,
    KnowledgeElementStatus,
    Learner,
)
from engine.scoring import rounded_percent
from tests.journey_helpers import assessment_campaign, student
from tests.orga_helpers import sign_in, take_test, world

TABS = ("", "/participants", "/resultats", "/analyse")


def text_of(html: str) -> str:
    """The page's text, tags removed and spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def charts_of(html: str) -> list[ET.Element]:
    """The charts of a page: the element inside each `<figure class="chart">`."""
    return [
        ET.fromstring(chart.strip())  # noqa: S314 - our own output
        for chart in re.findall(r'<figure class="chart">(.*?)</figure>', html, flags=re.S)
    ]


def chart_texts(chart: ET.Element, css_class: str) -> list[str]:
    return [
        " ".join("".join(e.itertext()).split())
        for e in chart.iter()
        if css_class in (e.get("class") or "").split()
    ]


def learner(db_session, w, user, *, division, first="Léa", last=None):
    found = Learner(
        organization_id=w.school.id,
        user_id=user.id,
        first_name=first,
        last_name=last or user.last_name,
        division=division,
    )
    db_session.add(found)
    db_session.flush()
    return found


@pytest.fixture
def campaign_world(db_session):
    """The admin's campaign with 3 shared participations (3e A, 3e A, 3e B), one to share and
    one started; nobody in the other campaigns."""
    w = world(db_session)
    users = [student(db_session, n) for n in range(1, 6)]
    for user, division in zip(users, ("3e A", "3e A", "3e B", "3e B", "3e C"), strict=True):
        learner(db_session, w, user, division=division, last=f"Nom{user.last_name[-1]}")
    shared = [
        take_test(db_session, w.campaign, users[i], success=rate, seed=i)
        for i, rate in enumerate((0.9, 0.5, 0.1))
    ]
    to_share = take_test(db_session, w.campaign, users[3], success=0.5, seed=3, share=False)
    started = take_test(db_session, w.campaign, users[4], success=0.5, seed=4, answers=3)
    assert started.status.value == "STARTED" and to_share.status.value == "TO_SHARE"
    db_session.commit()
    return w, shared, to_share, started


def get(client, path):
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def test_every_tab_shows_the_header_and_its_figures(client, db_session, campaign_world):
    w, *_ = campaign_world
    sign_in(client, w.admin.email)
    base = f"/orga/campagnes/{w.campaign.id}"
    for suffix in TABS:
        page = get(client, base + suffix)
        text = text_of(page)
        assert w.campaign.name in text and w.campaign.code in text
        assert f"http://127.0.0.1:5000/campagnes/{w.campaign.code}" in page
        assert "Participants 5" in text and "Résultats reçus 3" in text
        assert '<nav class="tabs"' in page
        assert page.count('aria-current="page"') == 2  # the panel's section and this tab
        assert f'href="/orga/campagnes/{w.campaign.id}/export.csv"' in page
        assert "Exporter les résultats (.csv)" in text
        assert f'href="/orga/campagnes/{w.campaign.id}/modifier"' in page  # the owner


def test_activity_shows_the_status_split_as_a_chart_and_a_table(client, campaign_world):
    w, *_ = campaign_world
    sign_in(client, w.admin.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}")
    text = text_of(page)
    assert "En cours de test 1" in text
    assert "En attente d’envoi 1" in text
    assert "Résultats reçus 3" in text
    statuses, days = charts_of(page)
    for chart in (statuses, days):
        assert chart.get("role") == "img" and chart.get("aria-label")
    assert statuses.get("aria-label") == (
        "Répartition des participants par statut. En cours de test : 1 participant. "
        "En attente d’envoi : 1 participant. Résultats reçus : 3 participants"
    )
    assert chart_texts(statuses, "chart-label") == [
        "En cours de test", "En attente d’envoi", "Résultats reçus"
    ]  # fmt: skip
    assert chart_texts(statuses, "chart-value") == [
        "1 participant",
        "1 participant",
        "3 participants",
    ]
    assert "1 participants" not in text


def test_activity_per_day_draws_started_participations_and_results_received(client, campaign_world):
    w, *_ = campaign_world
    sign_in(client, w.admin.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}")
    _, days = charts_of(page)
    # Everyone started today; three sent their results today.
    label = days.get("aria-label")
    assert label.startswith("Participations commencées et résultats reçus par jour. ")
    assert label.endswith(" : 5 participations commencées, 3 résultats reçus")
    assert chart_texts(days, "chart-legend") == ["Participations commencées Résultats reçus"]
    plot = days.find("svg")
    bars = sorted(plot.findall("rect"), key=lambda r: float(r.get("height")))
    assert [float(r.get("height")) for r in bars] == [90, 150]  # 3 and 5, on one scale
    assert bars[0].get("fill") == "url(#chart-days-hatch)"  # results received: hatched
    assert [t.text for t in plot.iter("text")] == [
        "5",
        "3",
        datetime.now(ZoneInfo("Europe/Paris")).strftime("%d/%m"),
    ]
    # The table, the accessible alternative, lists both.
    table = re.search(r"<table>\s*<caption>Participations commencées.*?</table>", page, re.S)
    assert "Participations commencées Résultats reçus" in text_of(table.group(0))
    assert re.search(r"</th><td class=\"numeric\">5</td><td class=\"numeric\">3</td>", page)


def test_activity_charts_in_english(client, campaign_world):
    w, *_ = campaign_world
    sign_in(client, w.admin.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}?lang=en")
    statuses, days = charts_of(page)
    assert statuses.get("aria-label") == (
        "Participants by status. Taking the test: 1 participant. "
        "Waiting to be sent: 1 participant. Results received: 3 participants"
    )
    assert chart_texts(statuses, "chart-value") == [
        "1 participant",
        "1 participant",
        "3 participants",
    ]
    assert days.get("aria-label").startswith(
        "Participations started and results received per day. "
    )
    assert days.get("aria-label").endswith(": 5 participations started, 3 results received")
    assert chart_texts(days, "chart-legend") == ["Participations started Results received"]


def test_a_member_sees_the_page_of_a_colleagues_campaign_without_modifier(client, campaign_world):
    w, *_ = campaign_world
    sign_in(client, w.member.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}")
    assert "/modifier" not in page and "Archiver" not in page
    page = get(client, f"/orga/campagnes/{w.member_campaign.id}")
    assert f'href="/orga/campagnes/{w.member_campaign.id}/modifier"' in page


def test_gar_schools_do_not_see_the_direct_link(client, db_session, campaign_world):
    w, *_ = campaign_world
    w.school.uses_gar = True
    db_session.commit()
    sign_in(client, w.admin.email)
    for suffix in TABS:
        page = get(client, f"/orga/campagnes/{w.campaign.id}{suffix}")
        assert f"/campagnes/{w.campaign.code}" not in page
        assert "ENT" in page and w.campaign.code in page


def test_participants_list_statuses_and_mastery_of_shared_results(client, campaign_world):
    w, shared, to_share, started = campaign_world
    sign_in(client, w.admin.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}/participants")
    rows = re.findall(r"<tr>\s*<th scope=\"row\">.*?</tr>", page, flags=re.S)
    assert len(rows) == 5
    names = [re.search(r">(Nom\d)</a>", row).group(1) for row in rows]
    assert names == sorted(names)
    by_id = {p.id: p for p in shared}
    for row in rows:
        pid = int(re.search(r"/participants/(\d+)", row).group(1))
        cells = text_of(row)
        if pid in by_id:
            assert f"Résultats reçus {rounded_percent(float(by_id[pid].mastery_rate))} %" in cells
        elif pid == to_share.id:
            assert "En attente d’envoi –" in cells
        else:
            assert pid == started.id and "En cours de test –" in cells
    assert 'class="pagination"' not in page  # one page: no navigation
    assert '<label for="division">Classe</label>' in page


def test_participants_are_filtered_by_class(client, campaign_world):
    w, *_ = campaign_world
    sign_in(client, w.admin.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}/participants?division=3e+A")
    rows = re.findall(r"<tr>\s*<th scope=\"row\">.*?</tr>", page, flags=re.S)
    assert len(rows) == 2 and all("3e A" in row for row in rows)
    assert '<option value="3e A" selected>' in page
    assert '<option value="3e C" >' in page  # every class of the campaign is offered
    # An unknown class shows everyone.
    page = get(client, f"/orga/campagnes/{w.campaign.id}/participants?division=6e+Z")
    assert len(re.findall(r"<tr>\s*<th scope=\"row\">", page)) == 5


def test_participants_are_paginated(client, db_session):
    w = world(db_session)
    for n in range(1, 13):
        user = users.create_user(
            db_session, first_name="Ana", last_name=f"P{n:02d}", email=f"p{n}@example.org"
        )
        journey.join(db_session, w.campaign, user)
    db_session.commit()
    sign_in(client, w.admin.email)
    base = f"/orga/campagnes/{w.campaign.id}/participants"
    first = get(client, base)
    assert "Page 1 sur 2" in text_of(first)
    assert [f"P{n:02d}" for n in range(1, 11)] == re.findall(r">(P\d\d)</a>", first)
    assert 'rel="next"' in first and 'rel="prev"' not in first
    second = get(client, base + "?page=2&par_page=10")
    assert re.findall(r">(P\d\d)</a>", second) == ["P11", "P12"]
    assert "Page 2 sur 2" in text_of(second) and 'rel="prev"' in second
    everyone = get(client, base + "?par_page=25")
    assert len(re.findall(r">(P\d\d)</a>", everyone)) == 12
    assert 'class="pagination"' not in everyone  # one page: no navigation
    assert '<option value="25" selected>' in everyone


def test_the_participant_page_shows_shared_results_and_tutorials(
    client, db_session, campaign_world
):
    w, shared, _to_share, _started = campaign_world
    weak = shared[2]
    sign_in(client, w.admin.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}/participants/{weak.id}")
    text = text_of(page)
    snapshot = weak.shared_results
    assert f"Maîtrise {rounded_percent(float(weak.mastery_rate))} %" in text
    overall = snapshot["overall"]
    assert f"Acquis validés / testés {overall['validated']} / {overall['tested']}" in text
    assert "Progression 100 %" in text and "Classe 3e B" in text
    for competence_id, part in snapshot["competences"].items():
        assert competence_id in text
        assert f"{part['validated']} / {part['targeted']}" in text
    content = journey.campaign_content(db_session, w.campaign)
    failed = db_session.scalars(
        select(KnowledgeElement.skill_id).where(
            KnowledgeElement.user_id == weak.user_id,
            KnowledgeElement.status == KnowledgeElementStatus.INVALIDATED,
            KnowledgeElement.source == KnowledgeElementSource.DIRECT,
        )
    ).all()
    assert failed  # a 10 % success rate fails questions
    for skill_id in failed:
        for tutorial in content.pack.skill_by_id[skill_id].tutorials:
            assert tutorial.title in page
    passed = {
        s.id
        for s in content.index.skills.values()
        if s.id not in failed and all(t.title not in page for t in s.tutorials)
    }
    assert passed  # other skills' tutorials are not proposed


def test_the_participant_page_shows_no_result_before_sharing(client, db_session, campaign_world):
    w, _shared, to_share, started = campaign_world
    sign_in(client, w.admin.email)
    for participation, status in ((to_share, "En attente d’envoi"), (started, "En cours de test")):
        page = get(client, f"/orga/campagnes/{w.campaign.id}/participants/{participation.id}")
        text = text_of(page)
        assert f"Statut {status}" in text
        assert "Maîtrise" not in text and "Acquis validés" not in text
        assert "Résultats par compétence" not in text and "Tutoriels proposés" not in text
        assert "vous parviendront quand il les aura envoyés" in text
    # What the student's own bar shows, as the test goes on.
    assessment = db_session.scalars(
        select(Assessment).where(Assessment.participation_id == started.id)
    ).one()
    shown = assessment.progress
    assert 0 < shown < 100
    started_page = text_of(
        get(client, f"/orga/campagnes/{w.campaign.id}/participants/{started.id}")
    )
    assert f"Progression {shown} %" in started_page
    to_share_page = text_of(
        get(client, f"/orga/campagnes/{w.campaign.id}/participants/{to_share.id}")
    )
    assert "Progression 100 %" in to_share_page


def test_collective_results_match_the_snapshots(client, campaign_world):
    w, shared, *_ = campaign_world
    sign_in(client, w.admin.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}/resultats")
    text = text_of(page)
    rates = [float(p.mastery_rate) for p in shared]
    assert f"Résultat moyen {rounded_percent(sum(rates) / 3)} %" in text
    buckets = [0] * 5
    for rate in rates:
        buckets[min(4, int(rate * 100 + 1e-9) // 20)] += 1
    for label, count in zip(
        ("0–20 %", "20–40 %", "40–60 %", "60–80 %", "80–100 %"), buckets, strict=True
    ):
        assert f"{label} {count}" in text
    (chart,) = charts_of(page)
    assert chart.get("role") == "img"
    expected = [f"{n} participant" if n == 1 else f"{n} participants" for n in buckets]
    assert chart_texts(chart, "chart-value") == expected
    assert chart_texts(chart, "chart-label") == [
        "0–20 %",
        "20–40 %",
        "40–60 %",
        "60–80 %",
        "80–100 %",
    ]
    assert chart.get("aria-label").startswith("Participants par taux de maîtrise. 0–20 % : ")
    for competence_id in shared[0].shared_results["competences"]:
        parts = [p.shared_results["competences"][competence_id] for p in shared]
        rate = sum(p["validated"] / p["targeted"] for p in parts) / 3
        average = sum(p["validated"] for p in parts) / 3
        row = re.search(rf"<th scope=\"row\">{re.escape(competence_id)} .*?</tr>", page, re.S)
        cells = text_of(row.group(0))
        assert f"{parts[0]['targeted']} " in cells
        assert f"{rounded_percent(rate)} %" in cells
        assert f"{round(average, 1):g}".replace(".", ",") in cells
    assert "Résultats par domaine" in text


def test_analysis_ranks_the_tubes_with_labels_and_tutorials(client, db_session, campaign_world):
    w, *_ = campaign_world
    sign_in(client, w.admin.email)
    page = get(client, f"/orga/campagnes/{w.campaign.id}/analyse")
    assert "d’après les résultats reçus (3 participants)" in text_of(page)
    content = journey.campaign_content(db_session, w.campaign)
    titles = [content.pack.tube_by_id[t.id].title for t in content.index.tubes]
    positions = sorted(page.index(title) for title in titles)
    assert len(positions) == len(titles)
    labels = re.findall(
        r"<td>(Très recommandé|Fortement recommandé|Recommandé|Assez recommandé)</td>", page
    )
    assert len(labels) == len(titles)
    scores = [
        float(s.replace(",", ".")) for s in re.findall(r"<td class=\"numeric\">([\d,]+)</td>", page)
    ]
    assert scores == sorted(scores)
    assert "tutoriel" in page and "<details>" in page


def test_profiles_collection_pages(client, db_session):
    w = world(db_session)
    collection = campaign_admin.create_campaign(
        db_session,
        organization=w.school,
        creator=w.admin,
        name="Collecte 2nde",
        type=CampaignType.PROFILES_COLLECTION,
    )
    # Knowledge from an assessment gives a profile worth sending.
    strong, waiting = student(db_session, 1), student(db_session, 2)
    other = assessment_campaign(db_session, w.school, w.admin, name="Autre", key="tp-cycle4")
    take_test(db_session, other, strong, success=0.9, seed=1)
    sent = journey.share(db_session, journey.join(db_session, collection, strong))
    journey.join(db_session, collection, waiting)
    db_session.commit()
    profile = sent.shared_results["profile"]
    assert profile["pix"] > 0
    sign_in(client, w.admin.email)
    base = f"/orga/campagnes/{collection.id}"
    header = get(client, base)
    assert "Collecte de profils" in header and "/analyse" not in header
    assert client.get(base + "/analyse").status_code == 404
    listing = text_of(get(client, base + "/participants"))
    assert "Pix" in listing and "Certifiable" in listing and "Maîtrise" not in listing
    assert f"Résultats reçus {profile['pix']} {'Oui' if profile['certifiable'] else 'Non'}" in (
        listing
    )
    assert "En attente d’envoi – –" in listing
    results_page = get(client, base + "/resultats")
    results = text_of(results_page)
    assert f"Pix moyen {profile['pix']}" in results
    assert f"Participants certifiables {int(profile['certifiable'])}" in results
    for competence_id, part in profile["competences"].items():
        assert re.search(
            rf"<th scope=\"row\">{re.escape(competence_id)} [^<]+</th>"
            rf"<td class=\"numeric\">{part['level']}</td><td class=\"numeric\">{part['pix']}</td>",
            results_page,
        ), competence_id
    detail = text_of(get(client, f"{base}/participants/{sent.id}"))
    assert f"Pix {profile['pix']}" in detail and "Profil envoyé, par compétence" in detail


def test_another_organizations_ids_are_not_found(client, db_session, campaign_world):
    w, shared, *_ = campaign_world
    foreign = take_test(db_session, w.other_campaign, student(db_session, 9), seed=9)
    # A participation of another campaign of the same organization.
    neighbour = take_test(db_session, w.member_campaign, student(db_session, 8), seed=8)
    db_session.commit()
    sign_in(client, w.admin.email)
    for suffix in TABS:
        assert client.get(f"/orga/campagnes/{w.other_campaign.id}{suffix}").status_code == 404
    for campaign_id, participation_id in (
        (w.other_campaign.id, foreign.id),
        (w.campaign.id, foreign.id),
        (w.campaign.id, neighbour.id),
        (w.other_campaign.id, shared[0].id),
    ):
        path = f"/orga/campagnes/{campaign_id}/participants/{participation_id}"
        assert client.get(path).status_code == 404, path
    assert (
        client.get(f"/orga/campagnes/{w.campaign.id}/participants/{shared[0].id}").status_code
        == 200
    )
