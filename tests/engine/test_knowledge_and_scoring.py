import datetime as dt

from engine.answers import Result
from engine.content import load_pack
from engine.knowledge import Source, Status, effective, infer
from engine.scoring import campaign_result, is_checkpoint, profile, rounded_percent
from tests.engine.helpers import T0, known
from tests.engine.helpers import profile as build_profile

TARGET = build_profile({"@recherche": 5, "@tri": 3}).skills


def statuses(new):
    return {k.skill.id: (k.status, k.source) for k in new}


def test_a_success_validates_the_easier_skills_of_the_tube():
    new = infer(TARGET["@recherche3"], Result.OK, target=TARGET, known={})
    assert statuses(new) == {
        "@recherche3": (Status.VALIDATED, Source.DIRECT),
        "@recherche1": (Status.VALIDATED, Source.INFERRED),
        "@recherche2": (Status.VALIDATED, Source.INFERRED),
    }
    assert all(k.earned_pix == 2.0 for k in new)


def test_a_failure_invalidates_the_harder_skills_and_earns_nothing():
    new = infer(TARGET["@recherche3"], Result.SKIPPED, target=TARGET, known={})
    assert statuses(new) == {
        "@recherche3": (Status.INVALIDATED, Source.DIRECT),
        "@recherche4": (Status.INVALIDATED, Source.INFERRED),
        "@recherche5": (Status.INVALIDATED, Source.INFERRED),
    }
    assert all(k.earned_pix == 0 for k in new)


def test_known_skills_are_left_alone():
    already = {"@recherche1": known("@recherche1", Status.INVALIDATED)}
    new = infer(TARGET["@recherche3"], Result.OK, target=TARGET, known=already)
    assert "@recherche1" not in statuses(new)


def test_old_failures_are_forgotten_but_successes_kept():
    elements = [
        known("@a1", Status.VALIDATED, at=T0 - dt.timedelta(days=400)),
        known("@a2", Status.INVALIDATED, at=T0 - dt.timedelta(days=4)),
        known("@a3", Status.INVALIDATED, at=T0 - dt.timedelta(days=3)),
        known("@a4", Status.VALIDATED, at=T0 - dt.timedelta(days=9)),
        known("@a4", Status.RESET, at=T0 - dt.timedelta(days=1)),
    ]
    assert set(effective(elements, at=T0)) == {"@a1", "@a3"}


def test_the_latest_element_of_a_skill_counts():
    elements = [
        known("@a1", Status.INVALIDATED, at=T0),
        known("@a1", Status.VALIDATED, at=T0 + dt.timedelta(days=1)),
    ]
    assert effective(elements)["@a1"].status is Status.VALIDATED


def test_competence_pix_and_levels_are_capped():
    pack = load_pack()
    everything = {s.id: known(s.id, Status.VALIDATED, pix=s.pix_value) for s in pack.skills}
    scores = profile(pack, everything)
    assert all(c.pix == 40 and c.level == 5 for c in scores.competences)
    assert scores.pix == 640 and scores.max_pix == 1024
    assert scores.is_certifiable and scores.collection_rate() == 1.0


def test_certifiability_needs_five_competences_at_level_one():
    pack = load_pack()
    chosen = {}
    for competence in pack.competences[:4]:
        for s in [s for t in competence.tubes for s in t.skills][:6]:
            chosen[s.id] = known(s.id, Status.VALIDATED, pix=s.pix_value)
    scores = profile(pack, chosen)
    assert scores.certifiable_competences == 4 and not scores.is_certifiable


def test_campaign_mastery_per_competence_and_area():
    pack = load_pack()
    skills = pack.profile_skills(pack.target_profile_by_id["tp-cycle4"].tube_levels)
    half = {s.id: known(s.id, Status.VALIDATED) for s in skills[::2]}
    result = campaign_result(pack, skills, half)
    assert result.overall.targeted == len(skills)
    assert result.overall.validated == len(half)
    assert sum(p.targeted for p in result.competences) == len(skills)
    assert sum(p.validated for p in result.areas) == len(half)
    assert result.as_dict()["overall"]["validated"] == len(half)


def test_checkpoints():
    assert [n for n in range(1, 16) if is_checkpoint(n)] == [5, 10, 15]


def test_percentages_round_half_up():
    assert rounded_percent(0.625) == 63
    assert rounded_percent(0.624) == 62
    assert rounded_percent(1.0) == 100


def test_pix_are_the_ones_earned_when_recorded():
    pack = load_pack()
    skill = pack.competence_by_id["1.1"].tubes[0].skills[0]
    scores = profile(pack, {skill.id: known(skill.id, Status.VALIDATED, pix=3.0)})
    assert next(c for c in scores.competences if c.competence_id == "1.1").pix == 3
