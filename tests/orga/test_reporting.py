"""Reporting services of a campaign's page and the SVG charts, checked against figures computed
here independently from the frozen snapshots and the knowledge elements."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections import defaultdict

import pytest
from sqlalchemy import select

from campaigns.accounts import users
from campaigns.journey import services as journey
from campaigns.orga import charts, reporting
from campaigns.shared.models import (
    KnowledgeElement,
    KnowledgeElementSource,
    KnowledgeElementStatus,
    Participation,
    ParticipationStatus,
)
from tests import factories
from tests.journey_helpers import student
from tests.orga_helpers import take_test, world

SVG = "{http://www.w3.org/2000/svg}"


# -- the analysis score ----------------------------------------------------------------------------


def test_tube_score_follows_the_reference_formula():
    # A tube of levels 1–4 in a campaign whose hardest skill is level 8.
    levels = [1, 2, 3, 4]
    # Nothing validated: only the difficulty part, 30 · 4 / 8.
    assert reporting.tube_score(levels, [], 8) == pytest.approx(15)
    # Levels 1 and 2 validated: 40·2/4 + 30·4/8 + 20·2/4 + 10·2/3 (next level to reach: 3).
    assert reporting.tube_score(levels, [1, 2], 8) == pytest.approx(20 + 15 + 10 + 20 / 3)
    # Everything validated: the next level is the tube's max, 40 + 15 + 20 + 10.
    assert reporting.tube_score(levels, [1, 2, 3, 4], 8) == pytest.approx(85)
    # A hole: 1 and 3 validated, reached 3, next level to reach 2.
    assert reporting.tube_score(levels, [1, 3], 8) == pytest.approx(30 + 15 + 10 + 15)
    # Levels not in the tube (another campaign's cap) are ignored.
    assert reporting.tube_score([1, 2], [1, 2, 5], 2) == pytest.approx(40 + 30 + 20 + 10)


def test_recommendation_labels_follow_the_thresholds():
    assert reporting.recommendation(0) == "Très recommandé"
    assert reporting.recommendation(25) == "Très recommandé"
    assert reporting.recommendation(25.01) == "Fortement recommandé"
    assert reporting.recommendation(50) == "Fortement recommandé"
    assert reporting.recommendation(50.5) == "Recommandé"
    assert reporting.recommendation(75) == "Recommandé"
    assert reporting.recommendation(75.01) == "Assez recommandé"
    assert reporting.recommendation(100) == "Assez recommandé"


def test_mastery_buckets_include_their_lower_bound():
    assert [reporting.bucket_of(r) for r in (0, 0.19, 0.2, 0.3999, 0.4, 0.6, 0.8, 0.99, 1)] == [
        0, 0, 1, 1, 2, 3, 4, 4, 4
    ]  # fmt: skip


# -- charts ---------------------------------------------------------------------------------------


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output


def test_bar_chart_is_valid_accessible_svg_with_escaped_labels():
    svg = charts.bar_chart(
        [("<script>alert(1)</script>", 3), ("Élèves & profs", 1.5)],
        title="Répartition <b>",
        unit="participants",
        ident="t1",
    )
    assert "<script>" not in svg and "<b>" not in svg
    root = parse(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "t1-title t1-desc"
    assert root.find(f"{SVG}title").text == "Répartition <b>"
    desc = root.find(f"{SVG}desc").text
    assert "<script>alert(1)</script> : 3 participants" in desc
    assert "Élèves & profs : 1,5 participants" in desc
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "<script>alert(1)</script>" in texts and "3 participants" in texts
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert widths[0] == pytest.approx(2 * widths[1])  # bars proportional to the values


def test_column_chart_is_valid_svg_and_thins_its_labels():
    items = [(f"{day:02d}/11", day % 3) for day in range(1, 61)]
    root = parse(charts.column_chart(items, title="Par jour", unit="participations"))
    assert root.get("role") == "img"
    ident = root.find(f"{SVG}title").get("id")
    assert root.get("aria-labelledby").startswith(ident)
    assert len(list(root.iter(f"{SVG}rect"))) == 60
    labels = [t.text for t in root.iter(f"{SVG}text") if t.text and "/11" in t.text]
    assert 1 < len(labels) < 60  # every label is in the desc, not all under the columns
    assert "60/11 : 0 participations" in root.find(f"{SVG}desc").text


def test_an_empty_chart_is_still_valid():
    root = parse(charts.bar_chart([], title="Vide", unit=""))
    assert root.find(f"{SVG}desc").text == "—"


# -- services on real participations ---------------------------------------------------------------


@pytest.fixture
def taken(db_session):
    """A campaign with four shared participations, one to share and one started."""
    w = world(db_session)
    users = [student(db_session, n) for n in range(1, 7)]
    shared = [
        take_test(db_session, w.campaign, users[i], success=rate, seed=i)
        for i, rate in enumerate((0.9, 0.6, 0.3, 0.0))
    ]
    to_share = take_test(db_session, w.campaign, users[4], success=0.5, seed=4, share=False)
    started = take_test(db_session, w.campaign, users[5], success=0.5, seed=5, answers=3)
    return w, shared, to_share, started


def test_figures_count_live_participations_by_status(db_session, taken):
    w, shared, to_share, started = taken
    assert to_share.status is ParticipationStatus.TO_SHARE
    assert started.status is ParticipationStatus.STARTED
    figures = reporting.figures(db_session, w.campaign)
    assert (figures.started, figures.to_share, figures.shared, figures.participants) == (
        1,
        1,
        4,
        6,
    )
    shared[0].deleted_at = shared[0].shared_at  # deleted participations are not counted
    db_session.flush()
    assert reporting.figures(db_session, w.campaign).shared == 3


def test_activity_counts_days_in_paris_time(db_session, taken):
    w, shared, to_share, started = taken
    # 23:30 UTC on 1 March is already 2 March in Paris.
    shared[0].created_at = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)
    shared[1].created_at = dt.datetime(2026, 3, 1, 22, 30, tzinfo=dt.UTC)
    shared[2].created_at = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
    shared[3].created_at = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
    for p in (to_share, started):
        p.created_at = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
    for p in shared:
        p.shared_at = dt.datetime(2026, 3, 4, 23, 0, tzinfo=dt.UTC)  # 5 March in Paris
    db_session.flush()
    days = reporting.activity(db_session, w.campaign)
    started_by_day = {d.date: d.started for d in days}
    assert started_by_day == {
        dt.date(2026, 3, 1): 1,
        dt.date(2026, 3, 2): 1,
        dt.date(2026, 3, 3): 0,  # empty days are shown in a short campaign
        dt.date(2026, 3, 4): 4,
        dt.date(2026, 3, 5): 0,
    }
    assert {d.date: d.shared for d in days if d.shared} == {dt.date(2026, 3, 5): 4}


def test_collective_results_match_the_snapshots(db_session, taken):
    w, shared, _to_share, _started = taken
    results = reporting.collective_results(db_session, w.campaign)
    assert (results.participants, results.shared) == (6, 4)
    rates = [float(p.mastery_rate) for p in shared]
    assert results.average_rate == pytest.approx(sum(rates) / 4)
    expected_buckets = [0] * 5
    for rate in rates:
        expected_buckets[min(4, int(rate * 100 + 1e-9) // 20)] += 1
    assert [n for _label, n in results.buckets] == expected_buckets
    assert results.buckets[0][0] == "0–20 %"
    for kind, groups in (("competences", results.competences), ("areas", results.areas)):
        assert groups, kind
        for group in groups:
            parts = [p.shared_results[kind][group.id] for p in shared]
            assert group.targeted == parts[0]["targeted"]
            assert group.average_validated == pytest.approx(sum(p["validated"] for p in parts) / 4)
            assert group.average_rate == pytest.approx(
                sum(p["validated"] / p["targeted"] for p in parts) / 4
            )
    assert any(g.average_validated for g in results.competences)


def test_collective_results_take_only_the_live_participation_of_each_user(db_session, taken):
    w, shared, _to_share, _started = taken
    shared[3].is_improved = True  # replaced by a newer one, not shared yet
    db_session.flush()
    results = reporting.collective_results(db_session, w.campaign)
    assert results.shared == 3
    assert results.average_rate == pytest.approx(sum(float(p.mastery_rate) for p in shared[:3]) / 3)


def expected_analysis(db_session, campaign, shared):
    """The analysis recomputed the slow way: each participant's knowledge at their share date."""
    index = journey.campaign_content(db_session, campaign).index
    campaign_max = max(s.level for s in index.skills.values())
    scores = defaultdict(float)
    for participation in shared:
        known = journey.user_knowledge(db_session, participation.user_id)
        for tube in index.tubes:
            validated = [
                s.level
                for s in tube.skills
                if s.id in known and known[s.id].status.value == "validated"
            ]
            scores[tube.id] += reporting.tube_score(
                [s.level for s in tube.skills], validated, campaign_max
            ) / len(shared)
    return scores


def test_analysis_averages_the_score_over_shared_participants(db_session, taken):
    w, shared, _to_share, _started = taken
    found = reporting.analysis(db_session, w.campaign)
    assert found.participants == 4
    expected = expected_analysis(db_session, w.campaign, shared)
    assert {t.tube_id: round(t.average_score, 6) for t in found.tubes} == {
        k: round(v, 6) for k, v in expected.items()
    }
    scores = [t.average_score for t in found.tubes]
    assert scores == sorted(scores)  # most recommended first
    # The fast query (one element per skill) and the exact one (latest element) agree.
    fast = reporting.validated_masks(db_session, w.campaign)
    assert fast and fast == reporting._exact_masks(db_session, w.campaign)
    for tube in found.tubes:
        assert tube.label == reporting.recommendation(tube.average_score)
        assert tube.tutorials and tube.competence_id == "4.3"


def test_analysis_reads_knowledge_as_of_the_share_date(db_session, taken):
    w, shared, _to_share, _started = taken
    before = {t.tube_id: t.average_score for t in reporting.analysis(db_session, w.campaign).tubes}
    weakest = shared[3]
    index = journey.campaign_content(db_session, w.campaign).index
    later = weakest.shared_at + dt.timedelta(days=1)
    for skill in index.skills.values():  # learned everything after sharing: changes nothing
        factories.knowledge(db_session, weakest.user_id, skill, created_at=later)
    after = {t.tube_id: t.average_score for t in reporting.analysis(db_session, w.campaign).tubes}
    assert after == pytest.approx(before)


def test_a_reset_before_sharing_undoes_a_validation(db_session, taken):
    w, shared, _to_share, _started = taken
    best = shared[0]
    validated = db_session.scalars(
        select(KnowledgeElement).where(
            KnowledgeElement.user_id == best.user_id,
            KnowledgeElement.status == KnowledgeElementStatus.VALIDATED,
        )
    ).first()
    assert validated is not None
    bit = 1 << journey.campaign_content(db_session, w.campaign).index.position[validated.skill_id]
    before = reporting.validated_masks(db_session, w.campaign)[validated.tube_id]
    db_session.add(
        KnowledgeElement(
            user_id=best.user_id,
            skill_id=validated.skill_id,
            tube_id=validated.tube_id,
            competence_id=validated.competence_id,
            status=KnowledgeElementStatus.RESET,
            source=KnowledgeElementSource.DIRECT,
            created_at=validated.created_at + dt.timedelta(microseconds=1),
        )
    )
    db_session.flush()
    exact = reporting.validated_masks(db_session, w.campaign)  # duplicates: the exact query
    assert exact == reporting._exact_masks(db_session, w.campaign)
    after = exact.get(validated.tube_id, {})
    with_bit = sum(n for mask, n in before.items() if mask & bit)
    assert sum(n for mask, n in after.items() if mask & bit) == with_bit - 1


def test_no_analysis_without_shared_results(db_session):
    w = world(db_session)
    found = reporting.analysis(db_session, w.campaign)
    assert (found.participants, found.tubes) == (0, [])


def test_participants_page_is_sorted_and_paginated(db_session):
    w = world(db_session)
    names = ["Zola", "martin", "Abel", "Durand", "Bernard"]
    for n, last in enumerate(names, start=1):
        user = users.create_user(
            db_session, first_name="A", last_name=last, email=f"p{n}@example.org"
        )
        journey.join(db_session, w.campaign, user)
    db_session.flush()
    first = reporting.participants_page(db_session, w.campaign, per_page=10)
    assert [r.last_name for r in first.items] == ["Abel", "Bernard", "Durand", "martin", "Zola"]
    assert (first.page, first.pages, first.total) == (1, 1, 5)
    # An unknown page size falls back to 10; a page past the end shows the last one.
    odd = reporting.participants_page(db_session, w.campaign, per_page=7, page=9)
    assert (odd.per_page, odd.page) == (10, 1)
    ids = {p.id for p in db_session.scalars(select(Participation))}
    assert {r.id for r in first.items} <= ids
