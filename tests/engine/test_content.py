"""The bundled content pack: complete, valid, and every question answerable as written."""

import json
import shutil
from collections import Counter

import pytest

from engine.answers import Result, check, expected_answer
from engine.content import (
    BUNDLED_PACK,
    ChallengeType,
    ContentError,
    check_pack,
    load_pack,
    pix_values,
)

PACK = load_pack()


def test_the_pack_is_valid():
    assert check_pack(BUNDLED_PACK) == []


def test_the_framework_has_its_5_areas_and_16_competences():
    assert [a.title for a in PACK.areas] == [
        "Informations et données",
        "Communication et collaboration",
        "Création de contenu",
        "Protection et sécurité",
        "Environnement numérique",
    ]
    assert [c.id for c in PACK.competences] == [
        "1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4",
        "3.1", "3.2", "3.3", "3.4", "4.1", "4.2", "4.3", "5.1", "5.2",
    ]  # fmt: skip
    assert PACK.competence_by_id["1.1"].title == "Mener une recherche et une veille d'information"


def test_the_pack_is_big_enough_to_assess_every_competence():
    assert len(PACK.tubes) >= 48
    assert all(len(c.tubes) >= 3 for c in PACK.competences)
    assert len(PACK.skills) >= 250
    assert Counter(s.level for s in PACK.skills)[8] >= 1
    assert len(PACK.challenges) >= 300
    kinds = Counter((c.type, c.mode) for c in PACK.challenges)
    for kind in [(ChallengeType.QCU, None), (ChallengeType.QCM, None), (ChallengeType.QROC, None),
                 (ChallengeType.QROCM, "ind"), (ChallengeType.QROCM, "dep")]:  # fmt: skip
        assert kinds[kind] >= 5, kind
    assert sum(c.is_timed for c in PACK.challenges) >= 20
    assert all(any(s.tutorials for s in t.skills) for t in PACK.tubes)
    assert len(PACK.target_profiles) >= 2


def test_each_competence_has_its_own_profile_and_mixed_profiles_are_not_competence_profiles():
    assert list(PACK.competence_profiles) == [c.id for c in PACK.competences]
    assert {cid: spec.id for cid, spec in PACK.competence_profiles.items()} == {
        c.id: f"tp-competence-{c.id}" for c in PACK.competences
    }
    assert PACK.target_profile_by_id["tp-competence-1.1"].single_competence_id == "1.1"
    assert PACK.target_profile_by_id["tp-seconde"].single_competence_id is None  # 3 competences
    assert PACK.target_profile_by_id["tp-cycle4"].single_competence_id is None  # tubes


def test_a_competence_profile_names_one_competence_and_no_tube(broken_pack):
    profiles = json.loads((broken_pack / "target_profiles.json").read_text(encoding="utf-8"))
    kept = [p for p in profiles if not p["id"].startswith("tp-competence-")]
    tube = PACK.competence_by_id["1.1"].tubes[0].id
    one = [{"id": "1.1", "level": 8}]
    (broken_pack / "target_profiles.json").write_text(
        json.dumps(
            [
                *kept,
                {
                    "id": "tp-1.1-plus",
                    "name": "1.1 et un sujet",
                    "competences": one,
                    "tubes": [{"id": PACK.competence_by_id["1.2"].tubes[0].id, "level": 2}],
                },
                {
                    "id": "tp-1.1-low",
                    "name": "1.1 débutant",
                    "competences": [{"id": "1.1", "level": 3}],
                },
                {"id": "tp-1.1", "name": "1.1 complète", "competences": one},
                {"id": "tp-1.1-again", "name": "1.1 encore", "competences": one},
                {"id": "tp-tube", "name": "Un sujet", "tubes": [{"id": tube, "level": 8}]},
            ]
        )
    )
    pack = load_pack(broken_pack)
    assert {cid: spec.id for cid, spec in pack.competence_profiles.items()} == {"1.1": "tp-1.1"}
    spec = pack.target_profile_by_id["tp-1.1-plus"]
    assert spec.competence_levels == (("1.1", 8),) and spec.single_competence_id is None


def test_the_cycle_4_profile_has_about_60_skills():
    profile = PACK.target_profile_by_id["tp-cycle4"]
    assert 55 <= len(PACK.profile_skills(profile.tube_levels)) <= 65


def test_every_tube_climbs_from_level_1():
    for tube in PACK.tubes:
        levels = [s.level for s in tube.skills]
        assert levels == list(range(1, len(levels) + 1)), tube.id


@pytest.mark.parametrize("challenge", PACK.challenges, ids=lambda c: c.id)
def test_every_solution_is_accepted_and_a_wrong_answer_refused(challenge):
    assert check(challenge, expected_answer(challenge)) is Result.OK
    if challenge.type is ChallengeType.QCU:
        wrong = next(
            i for i in range(1, len(challenge.proposals) + 1) if (i,) != challenge.solution_indexes
        )
        assert check(challenge, str(wrong)) is Result.KO
    elif challenge.type is ChallengeType.QCM:
        partial = ",".join(str(i) for i in challenge.solution_indexes[:-1])
        assert check(challenge, partial) is Result.KO
    elif challenge.type is ChallengeType.QROC:
        assert check(challenge, "zzqxjw") is Result.KO
    else:
        answers = json.loads(expected_answer(challenge))
        answers[challenge.fields[0].name] = "zzqxjw"
        assert check(challenge, json.dumps(answers)) is Result.PARTIALLY


def test_pix_values_follow_the_reference_rule():
    values = pix_values({"1.1": [1, 1, 2, 3, 3, 3, 3]})
    assert values == {("1.1", 1): 4.0, ("1.1", 2): 4.0, ("1.1", 3): 2.0}
    skill = PACK.skill_by_id["@rechercheRequete1"]
    same_level = [s for s in PACK.skills if s.competence_id == "1.1" and s.level == 1]
    assert skill.pix_value == min(4, 8 / len(same_level))


@pytest.fixture
def broken_pack(tmp_path):
    root = tmp_path / "pack"
    shutil.copytree(BUNDLED_PACK, root)
    return root


def edit(path, change):
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_problems_name_the_file_the_item_and_what_is_wrong(broken_pack):
    def break_things(data):
        challenge = data["tubes"][0]["skills"][0]["challenges"][0]
        challenge["type"] = "QCX"
        data["tubes"][1]["skills"][0]["challenges"][0]["timer"] = 5
        data["tubes"][2]["skills"][1]["level"] = data["tubes"][2]["skills"][0]["level"]

    edit(broken_pack / "competences/1.1.json", break_things)
    problems = [str(p) for p in check_pack(broken_pack)]
    assert any(p.startswith("competences/1.1.json: ch-") and "type must be" in p for p in problems)
    assert any("'timer' must be a whole number from 10 to 600" in p for p in problems)
    assert any("two skills share this level" in p for p in problems)
    with pytest.raises(ContentError):
        load_pack(broken_pack)


def test_duplicate_ids_across_files_are_reported(broken_pack):
    first = json.loads((broken_pack / "competences/1.1.json").read_text(encoding="utf-8"))
    taken = first["tubes"][0]["skills"][0]["challenges"][0]["id"]
    edit(
        broken_pack / "competences/5.2.json",
        lambda d: d["tubes"][0]["skills"][0]["challenges"][0].update(id=taken),
    )
    assert any("already used in competences/1.1.json" in str(p) for p in check_pack(broken_pack))


def test_unknown_tubes_in_profiles_and_bad_json_are_reported(broken_pack):
    (broken_pack / "target_profiles.json").write_text(
        json.dumps([{"id": "tp-x", "name": "X", "tubes": [{"id": "@nulle", "level": 3}]}])
    )
    (broken_pack / "competences/2.1.json").write_text("{ not json")
    problems = [str(p) for p in check_pack(broken_pack)]
    assert any("unknown tube '@nulle'" in p for p in problems)
    assert any(p.startswith("competences/2.1.json: -: not valid UTF-8 JSON") for p in problems)


def test_misspelt_keys_and_wrong_types_are_problems_not_crashes(broken_pack):
    def misspell(data):
        challenge = data["tubes"][0]["skills"][0]["challenges"][0]
        challenge["tolerance"] = ["t1"]
        data["tubes"][0]["skills"][1]["tutorials"] = 3

    edit(broken_pack / "competences/1.1.json", misspell)
    (broken_pack / "target_profiles.json").write_text('[{"id": "tp-x", "name": "X", "tubes": 5}]')
    problems = [str(p) for p in check_pack(broken_pack)]
    assert any("unknown key 'tolerance' in challenge" in p for p in problems)
    assert any("'tutorials' must be a list" in p for p in problems)
    assert any("target_profiles.json: tp-x: 'tubes' must be a list" in p for p in problems)


def test_ids_longer_than_the_database_keeps_are_refused(broken_pack):
    edit(broken_pack / "pack.json", lambda d: d.update(version="v" * 40))
    assert any("'version' must be" in str(p) for p in check_pack(broken_pack))
