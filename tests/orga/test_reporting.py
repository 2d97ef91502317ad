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

LONG_LABEL = (
    "Protéger la santé, le bien-être et l’environnement dans un usage quotidien du numérique"
)


@pytest.fixture
def french(app):
    with app.test_request_context("/"):
        yield


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # noqa: S314 - our own output


def texts_of(element: ET.Element) -> list[str]:
    return [" ".join("".join(e.itertext()).split()) for e in element.iter() if e.text]


def participants(count: float) -> str:
    return f"{int(count)} participant" + ("s" if count > 1 else "")


def test_bar_chart_writes_full_labels_and_values_beside_proportional_bars(french):
    chart = charts.bar_chart(
        [("<script>alert(1)</script>", 4), (LONG_LABEL, 2), ("Élèves & profs", 1)],
        title="Répartition <b>",
        value_text=participants,
        ident="t1",
    )
    assert "<script>" not in chart and "<b>" not in chart
    root = parse(chart)
    assert root.get("role") == "img" and root.get("id") == "t1"
    assert root.get("aria-label") == (
        "Répartition <b>. <script>alert(1)</script> : 4 participants. "
        f"{LONG_LABEL} : 2 participants. Élèves & profs : 1 participant"
    )
    labels = [e.text for e in root.iter("div") if e.get("class") == "chart-label"]
    assert labels == ["<script>alert(1)</script>", LONG_LABEL, "Élèves & profs"]  # never cut
    values = [e.text for e in root.iter("div") if e.get("class") == "chart-value"]
    assert values == ["4 participants", "2 participants", "1 participant"]
    # One bar per row, as wide as the track allows: a percentage, never a fixed size.
    tracks = [e for e in root.iter("svg")]
    assert all(t.get("width") == "100%" and t.get("viewBox") is None for t in tracks)
    widths = [t.find("rect").get("width") for t in tracks]
    assert widths == ["100%", "50%", "25%"]


def test_bar_chart_says_so_in_english(app):
    with app.test_request_context("/?lang=en"):
        root = parse(charts.bar_chart([("Done", 1)], title="Split", value_text=participants))
    assert root.get("aria-label") == "Split. Done: 1 participant"


def test_an_empty_bar_chart_is_still_valid(french):
    root = parse(charts.bar_chart([], title="Vide"))
    assert root.get("aria-label") == "Vide. —"


def two_series(count: int, started: list[int], shared: list[int]) -> ET.Element:
    return parse(
        charts.column_chart(
            [f"{day:02d}/11" for day in range(1, count + 1)],
            [
                charts.Series("Commencées", started, lambda n: f"{int(n)} commencées"),
                charts.Series("Reçus", shared, lambda n: f"{int(n)} reçus"),
            ],
            title="Par jour",
            long_labels=[f"{day} novembre" for day in range(1, count + 1)],
            ident="days",
        )
    )


def test_column_chart_draws_both_series_told_apart_by_a_hatching_and_a_legend(french):
    root = two_series(3, [2, 4, 0], [0, 1, 3])
    assert root.get("role") == "img"
    assert root.get("aria-label") == (
        "Par jour. 1 novembre : 2 commencées, 0 reçus. 2 novembre : 4 commencées, 1 reçus. "
        "3 novembre : 0 commencées, 3 reçus"
    )
    legend = root.find("ul")
    assert legend.get("class") == "chart-legend"
    assert [" ".join("".join(li.itertext()).split()) for li in legend] == ["Commencées", "Reçus"]
    keys = [li.find("svg/rect") for li in legend]
    assert keys[0].get("fill").startswith("#") and keys[1].get("fill").startswith("url(#")
    plot = root.find("svg")
    assert plot.get("width") == "100%" and plot.get("viewBox") is None  # text is never scaled
    bars = [r for r in plot.findall("rect")]  # empty values draw no bar
    solid = [r for r in bars if r.get("fill").startswith("#")]
    hatched = [r for r in bars if r.get("fill") == "url(#days-hatch)"]
    assert [float(r.get("height")) for r in solid] == [75, 150]
    assert [float(r.get("height")) for r in hatched] == [37.5, 112.5]  # one scale for both
    assert [p.get("id") for p in root.iter("pattern")] == ["days-key-hatch", "days-hatch"]
    # Few dates: every date and every value is written.
    texts = [t.text for t in plot.iter("text")]
    assert [t for t in texts if "/" in t] == ["01/11", "02/11", "03/11"]
    assert sorted(t for t in texts if "/" not in t) == sorted(["2", "4", "0", "0", "1", "3"])


def test_column_chart_thins_its_dates_to_fit_a_phone_and_shows_more_on_wide_screens(french):
    count = 60
    root = two_series(count, [day % 3 for day in range(count)], [day % 2 for day in range(count)])
    plot = root.find("svg")
    narrow, wide = plot.findall("g")
    assert narrow.get("class") == "chart-ticks-narrow" and wide.get("display") == "none"
    on_phone = [t.text for t in narrow.iter("text")]
    assert on_phone[0] == "01/11" and on_phone[-1] == "60/11"
    assert 2 <= len(on_phone) <= 5  # 13 px dates side by side on a 320 px screen
    assert len(on_phone) < len([t.text for t in wide.iter("text")]) < count
    # Values do not fit above 120 columns on a phone: a dotted line marks the largest instead.
    assert [t.text for t in plot.findall("text")] == ["2"]
    assert plot.find("line").get("stroke-dasharray")
    assert "60 novembre : 2 commencées, 1 reçus" in root.get("aria-label")


def test_column_chart_in_english(app):
    with app.test_request_context("/?lang=en"):
        root = two_series(1, [1], [2])
    assert root.get("aria-label") == "Par jour. 1 novembre: 1 commencées, 2 reçus"


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
