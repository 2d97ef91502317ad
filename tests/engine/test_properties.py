"""Invariants of every selector, over random profiles, learners and answer noise."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.content import load_pack
from engine.knowledge import Knowledge, Status
from engine.scoring import MAX_REACHABLE_LEVEL, PIX_PER_LEVEL, campaign_result, profile
from engine.selection import (
    _CELLS,
    ABILITY_GRID,
    SELECTORS,
    ProfileIndex,
    _after_answer,
    _answered,
    _bounds,
    _logsumexp,
    _loss,
    _mastery,
    _overall,
    _summary,
    _uncertainty,
)
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


# The adaptive selector's arithmetic, against the textbook computation it shortcuts.

probabilities = st.floats(0.0, 1.0, allow_nan=False)
grid_weights = st.lists(
    st.floats(0.0, 1.0, allow_nan=False), min_size=len(ABILITY_GRID), max_size=len(ABILITY_GRID)
).filter(lambda w: sum(w) > 1e-6)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0.001, 1.0, allow_nan=False), min_size=2, max_size=9),
    st.data(),
    st.sampled_from([(0.03, 0.05), (0.1, 0.2), (0.25, 0.4), (0.0, 0.0)]),
    st.booleans(),
)
def test_an_answer_changes_mastery_as_updating_the_posterior_would(weights, data, noise, right):
    """`_answered` reads P(answer) and P(skill j mastered) after it from the tails of the
    posterior; the same as multiplying the posterior by the answer's likelihood, normalising and
    summing its tails again."""
    posterior = [w / sum(weights) for w in weights]
    index = data.draw(st.integers(0, len(posterior) - 2))
    slip, guess = noise
    unknown, known = (guess, 1 - slip) if right else (1 - guess, slip)
    updated = [w * (known if k > index else unknown) for k, w in enumerate(posterior)]
    expected_p = sum(updated)
    p, mastery = _answered(_mastery(posterior), sum(posterior), index, unknown, known)
    assert p == pytest.approx(expected_p, abs=1e-12)
    if expected_p > 1e-9:
        after = [w / expected_p for w in updated]
        expected = [sum(after[j + 1 :]) for j in range(len(posterior) - 1)]
        assert mastery == pytest.approx(expected, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=9),
    st.data(),
    st.sampled_from([(0.03, 0.05), (0.1, 0.2), (0.25, 0.4), (0.0, 0.0), (0.0, 1.0)]),
    st.booleans(),
)
def test_the_loss_after_an_answer_is_computed_in_one_pass_to_the_same_float(
    weights, data, noise, right
):
    """`_after_answer` gives, in one pass, exactly the floats that `_loss` and `_uncertainty`
    give on the list `_answered` builds (plans stay the same, bit for bit); zero weights and a
    noise that makes the answer impossible included."""
    total = sum(weights) or 1.0
    posterior = [w / total for w in weights]
    skills = len(posterior) - 1
    index = data.draw(st.integers(0, skills - 1))
    asked = data.draw(st.lists(st.tuples(st.integers(0, skills - 1), st.booleans()), max_size=4))
    highest, lowest = _bounds(asked, skills)
    slip, guess = noise
    unknown, known = (guess, 1 - slip) if right else (1 - guess, slip)
    if right:
        highest = max(highest, index)
    else:
        lowest = min(lowest, index)
    mastery = _mastery(posterior)
    p, after = _answered(mastery, sum(posterior), index, unknown, known)
    assert _after_answer(mastery, sum(posterior), index, unknown, known, highest, lowest) == (
        p,
        _loss(after, highest, lowest),
        _uncertainty(after),
    )


@settings(max_examples=300, deadline=None)
@given(grid_weights)
def test_a_level_summary_is_the_mean_and_spread_of_the_weights(weights):
    total = sum(weights)
    mean = sum(w * b for w, b in zip(weights, ABILITY_GRID, strict=True)) / total
    variance = sum(w * (b - mean) ** 2 for w, b in zip(weights, ABILITY_GRID, strict=True)) / total
    assert _summary(weights) == pytest.approx((mean, math.sqrt(variance)), abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.floats(-50.0, 0.0, allow_nan=False),
            min_size=len(ABILITY_GRID),
            max_size=len(ABILITY_GRID),
        ),
        min_size=len(_CELLS),
        max_size=len(_CELLS),
    )
)
def test_the_overall_level_is_the_mixture_of_the_cells(totals):
    """`_overall` shares its exponentials between a cell's weight and its levels; the same as
    normalising each cell's P(·, a) on its own."""
    cells = [(*cell, total) for cell, total in zip(_CELLS, totals, strict=True)]
    logs = [log_prior + _logsumexp(total) for log_prior, _, _, total in cells]
    norm = _logsumexp(logs)
    levels = [0.0] * len(ABILITY_GRID)
    for (_, _, _, total), log_w in zip(cells, logs, strict=True):
        z = _logsumexp(total)
        levels = [
            level + math.exp(log_w - norm) * math.exp(t - z)
            for level, t in zip(levels, total, strict=True)
        ]
    mean, spread = _summary(levels)
    (got_mean, got_spread, _), class_weights = _overall(cells)
    # The prior is quantised (1/8 of a level, 1/20 of spread): the same step, unless the exact
    # value sits on the boundary between two.
    for got, exact, steps in ((got_mean, mean, 8), (got_spread, spread, 20)):
        if abs((exact * steps) % 1 - 0.5) > 1e-6:
            assert got == round(exact * steps) / steps
    assert sum(class_weights) == pytest.approx(1.0)
