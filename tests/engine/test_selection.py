import random

from engine.answers import Result
from engine.knowledge import Status
from engine.selection import (
    PROGRESS_CAP,
    SELECTORS,
    Adaptive,
    Baseline,
    Situation,
    Step,
    estimate_level,
)
from engine.simulation import Learner, run
from tests.engine.helpers import known, profile


def first_question(selector, index, **extra):
    return selector.next_challenge(Situation(index, "a-1", {}, **extra))


def test_baseline_starts_in_an_easy_tube_at_level_2():
    index = profile({"@dur": 6, "@facile": 3})
    assert first_question(Baseline(), index).skill_id == "@facile2"


def test_baseline_starts_at_the_lowest_level_when_level_2_is_gone():
    index = profile({"@facile": 3})
    situation = Situation(index, "a-1", {"@facile2": known("@facile2", Status.VALIDATED)})
    assert Baseline().next_challenge(situation).skill_id == "@facile1"


def test_baseline_avoids_a_timed_first_question_and_two_timed_in_a_row():
    index = profile({"@a": 3, "@b": 3}, timed={"@a2", "@b1", "@b3"})
    first = first_question(Baseline(), index)
    assert first.skill_id == "@b2" and not first.is_timed
    timed = index.playable["@a2"][0]
    after_timed = Situation(index, "a-1", {}, (Step(timed, Result.OK),))
    assert not Baseline().next_challenge(after_timed).is_timed


def test_timed_challenges_are_asked_when_nothing_else_remains():
    index = profile({"@a": 1}, timed={"@a1"})
    assert first_question(Baseline(), index).skill_id == "@a1"


def test_the_level_estimate():
    assert estimate_level([]) == 3.5
    assert estimate_level([(5, True), (6, True)]) > 3.5
    assert estimate_level([(1, False), (2, False)]) < 3.5


def test_baseline_drops_skills_far_too_difficult():
    index = profile({"@a": 8})
    learner = Learner({"@a": 0}, slip=0, guess=0)
    outcome = run(Baseline(), index, learner, random.Random(1))
    asked = {step.challenge.skill_id for step in outcome.steps}
    assert "@a8" not in asked and outcome.questions <= 3


def test_choices_are_reproducible_for_an_assessment():
    index = profile({"@a": 5, "@b": 5, "@c": 4})
    learner = Learner({"@a": 3, "@b": 1, "@c": 4})
    for selector in SELECTORS.values():
        first = run(selector, index, learner, random.Random(7), assessment_id="x")
        second = run(selector, index, learner, random.Random(7), assessment_id="x")
        assert [s.challenge.id for s in first.steps] == [s.challenge.id for s in second.steps]


def test_adaptive_credits_a_tube_only_after_an_answer_in_it():
    index = profile({"@a": 3, "@b": 3, "@c": 3, "@d": 3})
    learner = Learner({tube: 3 for tube in ("@a", "@b", "@c", "@d")}, slip=0, guess=0)
    outcome = run(Adaptive(), index, learner, random.Random(1))
    asked_tubes = {index.skills[s.challenge.skill_id].tube_id for s in outcome.steps}
    validated_tubes = {
        index.skills[k].tube_id
        for k, v in outcome.knowledge.items()
        if v.status is Status.VALIDATED
    }
    assert validated_tubes <= asked_tubes
    assert validated_tubes == {"@a", "@b", "@c", "@d"}


def test_adaptive_finds_a_noiseless_learner_exactly():
    index = profile({"@a": 6, "@b": 6, "@c": 6})
    learner = Learner({"@a": 2, "@b": 5, "@c": 0}, slip=0, guess=0)
    outcome = run(Adaptive(min_gain=0.0, max_share=1.0), index, learner, random.Random(3))
    for skill in index.skills.values():
        element = outcome.knowledge.get(skill.id)
        validated = element is not None and element.status is Status.VALIDATED
        assert validated == learner.masters(skill.tube_id, skill.level), skill.id


def test_knowledge_from_elsewhere_is_not_asked_again():
    index = profile({"@a": 4})
    before = {"@a2": known("@a2", Status.VALIDATED)}
    for selector in SELECTORS.values():
        outcome = run(selector, index, Learner({"@a": 4}), random.Random(2), known=before)
        assert "@a2" not in {s.challenge.skill_id for s in outcome.steps}


# -- the adaptive selector on learners unlike its model -------------------------------------------

AREAS = {  # two areas of three competences, one tube each
    "@chercher": "1.1", "@trier": "1.2", "@stocker": "1.3",
    "@coder": "3.4", "@publier": "3.2", "@creer": "3.1",
}  # fmt: skip


def _validated(outcome, index, tubes):
    return sum(
        1
        for skill_id, element in outcome.knowledge.items()
        if index.skills[skill_id].tube_id in tubes and element.status is Status.VALIDATED
    )


def test_a_learner_strong_in_one_area_and_weak_in_another_is_measured_as_such():
    index = profile(dict.fromkeys(AREAS, 5), competences=AREAS)
    strong = [t for t, c in AREAS.items() if c.startswith("1.")]
    weak = [t for t, c in AREAS.items() if c.startswith("3.")]
    learner = Learner({**dict.fromkeys(strong, 5), **dict.fromkeys(weak, 0)}, slip=0.05, guess=0.1)
    errors = 0
    for seed in range(20):
        outcome = run(Adaptive(), index, learner, random.Random(seed), assessment_id=f"a{seed}")
        errors += 15 - _validated(outcome, index, strong) + _validated(outcome, index, weak)
    assert errors / 20 <= 2.0  # of 30 skills: the weak area is not lifted, the strong not sunk


def test_every_competence_gets_a_question_even_from_a_student_who_skips_everything():
    index = profile(dict.fromkeys(AREAS, 5), competences=AREAS)
    skipper = Learner(dict.fromkeys(AREAS, 0), slip=0, guess=0)
    outcome = run(Adaptive(), index, skipper, random.Random(1))
    asked = {index.skills[s.challenge.skill_id].competence_id for s in outcome.steps}
    assert asked == set(AREAS.values())


def test_a_competence_answered_in_an_earlier_campaign_need_not_be_asked_again():
    index = profile(dict.fromkeys(AREAS, 5), competences=AREAS)
    before = {"@coder1": known("@coder1", Status.INVALIDATED)}
    skipper = Learner(dict.fromkeys(AREAS, 0), slip=0, guess=0)
    outcome = run(Adaptive(), index, skipper, random.Random(1), known=before)
    asked = {index.skills[s.challenge.skill_id].competence_id for s in outcome.steps}
    assert "3.4" not in asked and asked == set(AREAS.values()) - {"3.4"}


def test_no_test_is_longer_than_half_the_profile():
    index = profile(dict.fromkeys(AREAS, 8), competences=AREAS)
    noisy = Learner(dict.fromkeys(AREAS, 4), slip=0.3, guess=0.4)
    for seed in range(5):
        outcome = run(Adaptive(), index, noisy, random.Random(seed), assessment_id=f"a{seed}")
        assert outcome.questions <= 24


def test_the_progress_estimate_follows_the_test():
    index = profile(dict.fromkeys(AREAS, 6), competences=AREAS)
    gaps = []
    for seed in range(30):
        rng = random.Random(seed)
        learner = Learner({tube: rng.randint(0, 6) for tube in AREAS}, slip=0.1, guess=0.15)
        for selector in SELECTORS.values():
            outcome = run(selector, index, learner, rng, assessment_id=f"p{seed}", progress=True)
            assert all(0 <= value <= PROGRESS_CAP for value in outcome.progress)
            done = outcome.questions
            gaps += [abs(v - n / done) for n, v in enumerate(outcome.progress, start=1)]
    assert sum(gaps) / len(gaps) < 0.15  # close to the share of the test actually done


def test_a_competence_still_unasked_gets_its_question_even_past_the_longest_test():
    shape = {f"@t{n}": 4 for n in range(4)} | {f"@u{n}": 4 for n in range(9)}
    competences = {tube: "1.1" if tube.startswith("@t") else f"2.{tube[2:]}" for tube in shape}
    index = profile(shape, competences=competences)
    selector = Adaptive(max_share=0.0)  # the longest test: 12 questions
    steps = tuple(
        Step(index.playable[f"@t{n}{level}"][0], Result.OK if level < 3 else Result.KO)
        for n in range(4)
        for level in (1, 2, 3)
    )
    assert len(steps) == index.question_cap(0.0) == 12
    asked = selector.next_challenge(Situation(index, "a-1", {}, steps))
    assert asked is not None and index.skills[asked.skill_id].competence_id.startswith("2.")
