"""Invariants of every selector, over random profiles, learners and answer noise."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.content import load_pack
from engine.knowledge import Knowledge, Status
from engine.scoring import MAX_REACHABLE_LEVEL, PIX_PER_LEVEL, campaign_result, profile
from engine.selection import SELECTORS, ProfileIndex
from engine.simulation import Learner, run
from tests.engine.helpers import profile as build_profile

PACK = load_pack()

tubes = st.dictionaries(
    st.sampled_from([f"@t{n}" for n in range(8)]), st.integers(1, 8), min_size=1, max_size=6
)


@st.composite
def situations(draw):
    shape = draw(tubes)
    timed = draw(
        st.sets(
            st.sampled_from([f"{t}{lv}" for t, top in shape.items() for lv in range(1, top + 1)])
        )
    )
    index = build_profile(shape, timed=timed)
    learner = Learner(
        {t: draw(st.integers(0, top)) for t, top in shape.items()},
        slip=draw(st.sampled_from([0.0, 0.1, 0.3])),
        guess=draw(st.sampled_from([0.0, 0.15, 0.5])),
    )
    return index, learner, draw(st.sampled_from(sorted(SELECTORS))), draw(st.integers(0, 10_000))


@settings(max_examples=150, deadline=None)
@given(situations())
def test_a_test_always_ends_and_never_asks_a_skill_twice(case):
    index, learner, name, seed = case
    outcome = run(SELECTORS[name], index, learner, random.Random(seed), max_questions=200)
    asked = [s.challenge.skill_id for s in outcome.steps]
    assert len(asked) < 200  # ended by itself
    assert len(asked) == len(set(asked))
    assert len(asked) <= len(index.skills)


@settings(max_examples=150, deadline=None)
@given(situations())
def test_knowledge_within_a_tube_is_consistent(case):
    index, learner, name, seed = case
    outcome = run(SELECTORS[name], index, learner, random.Random(seed))
    for tube in index.tubes:
        statuses = [outcome.knowledge.get(s.id) for s in tube.skills]
        seen_failure = False
        for element in statuses:
            if element is None:
                continue
            if element.status is Status.INVALIDATED:
                seen_failure = True
            assert not (seen_failure and element.status is Status.VALIDATED), tube.id


@settings(max_examples=100, deadline=None)
@given(
    st.sets(st.sampled_from([s.id for s in PACK.skills])),
    st.sampled_from([p.id for p in PACK.target_profiles]),
)
def test_scores_never_exceed_their_caps(validated, profile_id):
    import datetime as dt

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    knowledge = {s: Knowledge(s, Status.VALIDATED, "direct", now) for s in validated}  # type: ignore[arg-type]
    scores = profile(PACK, knowledge)
    for competence in scores.competences:
        assert 0 <= competence.pix <= MAX_REACHABLE_LEVEL * PIX_PER_LEVEL
        assert 0 <= competence.level <= MAX_REACHABLE_LEVEL
    assert scores.pix <= scores.max_pix
    skills = PACK.profile_skills(PACK.target_profile_by_id[profile_id].tube_levels)
    result = campaign_result(PACK, skills, knowledge)
    assert 0 <= result.mastery_rate <= 1
    assert all(0 <= part.rate <= 1 for part in (*result.competences, *result.areas))


def test_the_profile_index_keeps_each_tube_in_level_order():
    index = ProfileIndex.build(
        PACK.profile_skills(PACK.target_profile_by_id["tp-cycle4"].tube_levels)
    )
    for tube in index.tubes:
        assert list(tube.levels) == sorted(tube.levels)
