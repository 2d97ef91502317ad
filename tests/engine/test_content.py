"""The bundled content pack: complete, valid, and every question answerable as written."""

import json
import shutil
from collections import Counter

import pytest

from engine.answers import Result, check, expected_answer, matches
from engine.content import (
    BUNDLED_PACK,
    ChallengeType,
    ContentError,
    TextPart,
    check_pack,
    fence_problems,
    load_pack,
    pix_values,
    read_pack_files,
    style_problems,
    text_parts,
)

PACK = load_pack()


def test_the_pack_is_valid():
    assert check_pack(BUNDLED_PACK) == []
    assert style_problems(read_pack_files(BUNDLED_PACK)) == []


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
    assert PACK.competence_by_id["1.1"].title == "Mener une recherche et une veille d’information"


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


# -- code blocks and typography -------------------------------------------------------------------


def test_a_code_block_keeps_its_lines_and_indentation():
    text = "Que vaut total ?\n```\ntotal ← 10\nrépéter 4 fois :\n\n    total ← total − 2\n```\nRépondez."
    assert text_parts(text) == (
        TextPart("Que vaut total ?"),
        TextPart("total ← 10\nrépéter 4 fois :\n\n    total ← total − 2", is_code=True),
        TextPart("Répondez."),
    )
    assert text_parts("Sans code.\nDeux lignes.") == (TextPart("Sans code.\nDeux lignes."),)
    # Fences may carry spaces; a block may open or end the text.
    assert text_parts("  ```  \nx = 1\n```") == (TextPart("x = 1", is_code=True),)
    # Left open (refused at import), the block runs to the end rather than showing its fence.
    assert text_parts("Voici :\n```\nx = 1") == (TextPart("Voici :"), TextPart("x = 1", True))


def test_fences_are_checked():
    assert fence_problems("Voici :\n```\nx = 1\n```\nFin.") == []
    assert fence_problems("Sans code") == []
    assert fence_problems("Voici :\n```\nx = 1") == [
        "code block opened by ``` and never closed (add a line with ``` alone)"
    ]
    assert fence_problems("```python\nx = 1\n```") == [
        "a code fence is ``` alone on its line (line 1: ```python)"
    ]
    assert fence_problems("Vide :\n```\n   \n```") == ["empty code block (line 4)"]


def test_an_unclosed_fence_is_a_problem_naming_the_challenge(broken_pack):
    def unclose(data):
        challenge = data["tubes"][0]["skills"][2]["challenges"][0]
        challenge["instruction"] = challenge["instruction"].replace("```\nRépondez", "Répondez")

    edit(broken_pack / "competences/3.4.json", unclose)
    assert [str(p) for p in check_pack(broken_pack)] == [
        "competences/3.4.json: ch-progSequence-3-a: 'instruction': code block opened by ``` "
        "and never closed (add a line with ``` alone)"
    ]
    # Refused at import and by `content check`; a release stored before fences existed still
    # loads (the open block runs to the end of its text) for the campaigns that froze it.
    challenge = load_pack(broken_pack).challenge_by_id["ch-progSequence-3-a"]
    assert challenge.instruction_has_code


def test_the_programs_of_the_pack_are_code_blocks():
    with_code = [c for c in PACK.challenges if c.instruction_has_code]
    assert len(with_code) >= 20
    assert {c.skill_id[:-1] for c in with_code} == {
        "@progSequence",
        "@progVariable",
        "@progFonction",
    }
    assert text_parts(PACK.challenge_by_id["ch-progSequence-3-a"].instruction)[1] == TextPart(
        "total ← 10\nrépéter 4 fois :\n    total ← total − 2", is_code=True
    )
    # No indentation is left where the page would collapse it: outside code blocks.
    for challenge in PACK.challenges:
        for part in text_parts(challenge.instruction):
            if not part.is_code:
                assert not any(line[:1].isspace() for line in part.text.splitlines()), challenge.id


def test_competence_names_are_typeset():
    assert PACK.competence_by_id["3.2"].title == "Développer des documents multimédia"
    assert PACK.target_profile_by_id["tp-competence-3.2"].name == (
        "3.2 Développer des documents multimédia"
    )
    assert not [c.title for c in PACK.competences if "'" in c.title]


def _typographic_answers():
    for c in PACK.challenges:
        for accepted in (c.solutions, *c.solution_groups, *(f.solutions for f in c.fields)):
            for solution in accepted:
                if "’" in solution:
                    yield pytest.param(accepted, solution, c.tolerances, id=f"{c.id}: {solution}")


def test_the_pack_has_answers_with_typographic_apostrophes_to_try():
    assert len(list(_typographic_answers())) >= 20  # the test below is not an empty set


@pytest.mark.parametrize(("accepted", "solution", "tolerances"), list(_typographic_answers()))
def test_an_answer_typed_with_a_straight_apostrophe_is_accepted(accepted, solution, tolerances):
    typed = solution.replace("’", "'")
    assert matches(typed, accepted, tolerances)
    assert matches(typed, (solution,), ())  # whatever the tolerances


def test_straight_apostrophes_are_reported_where_they_are(broken_pack):
    def straighten(data):
        data["areas"][0]["competences"][0]["title"] = "Mener une veille d'information"

    def mix(data):
        tube = data["tubes"][0]
        challenge = tube["skills"][2]["challenges"][0]  # ch-progSequence-3-a, with a code block
        challenge["instruction"] = challenge["instruction"].replace(
            "total ← 10", "total ← 10\nnom ← 'Léa'"
        )
        challenge["solutions"] = ["2", "l'entier 2"]
        other = tube["skills"][0]["challenges"][0]  # ch-progSequence-1-a, a QCU
        other["proposals"][1] = "1 case au nord et 2 cases à l'ouest"
        tube["skills"][0]["tutorials"][0]["text"] += " Voir https://example.org/l'aide."

    edit(broken_pack / "pack.json", straighten)
    edit(broken_pack / "competences/3.4.json", mix)
    files = read_pack_files(broken_pack)
    assert [str(p) for p in style_problems(files)] == [
        "pack.json: competence 1.1: 'title': 1 straight apostrophe (write ’ in French text), "
        "first in “Mener une veille d'information”",
        "competences/3.4.json: ch-progSequence-1-a: 'proposals' 2: 1 straight apostrophe "
        "(write ’ in French text), first in “2 cases à l'ouest”",
    ]
    # The code block, the answer and the URL keep their straight quotes, and the pack still loads.
    assert check_pack(broken_pack) == []


def test_a_fence_outside_an_instruction_is_reported(broken_pack):
    def fence(data):
        challenge = data["tubes"][0]["skills"][2]["challenges"][0]
        challenge["explanation"] += "\n```\ntotal ← 2\n```"

    edit(broken_pack / "competences/3.4.json", fence)
    assert [str(p) for p in style_problems(read_pack_files(broken_pack))] == [
        "competences/3.4.json: ch-progSequence-3-a: 'explanation': code blocks (```) are for "
        "instructions only"
    ]


def test_an_english_pack_may_use_straight_apostrophes(broken_pack):
    edit(broken_pack / "pack.json", lambda d: d.update(locale="en"))
    edit(
        broken_pack / "target_profiles.json",
        lambda d: d[0].update(name="Year 9's profile"),
    )
    assert style_problems(read_pack_files(broken_pack)) == []
