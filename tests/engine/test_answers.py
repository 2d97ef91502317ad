import json

import pytest

from engine.answers import Result, check, edit_distance, normalize
from engine.content import Challenge, ChallengeType, Field


def qroc(*solutions, tolerances=("t1", "t2", "t3")):
    return Challenge(id="c", skill_id="@t1", type=ChallengeType.QROC, instruction="?", explanation="!",
                     solutions=solutions, tolerances=tolerances, label="Réponse")  # fmt: skip


@pytest.mark.parametrize(
    ("typed", "tolerances", "expected"),
    [
        ("  Navigateur   Web ", ("t1",), Result.OK),
        ("Navigateur web", ("t2",), Result.KO),  # case matters without t1
        ("Navigatéur web", ("t1",), Result.KO),
        ("Navigatéur, web!", ("t1", "t2"), Result.OK),
        ("navigatuer web", ("t1", "t2"), Result.KO),
        ("navigatuer web", ("t1", "t2", "t3"), Result.OK),  # one swap = 2 edits, 14 chars allow 2
        ("navigat web", ("t1", "t2", "t3"), Result.KO),
    ],
)
def test_tolerance_levels(typed, tolerances, expected):
    assert check(qroc("navigateur web", tolerances=tolerances), typed) is expected


def test_typographic_quotes_and_dashes_are_plain_ones():
    challenge = qroc("l'ordinateur", tolerances=("t1",))
    assert check(challenge, "l’ordinateur") is Result.OK
    assert normalize("« a – b »", ("t1",)) == '" a - b "'


def test_short_answers_allow_no_typo():
    assert check(qroc("bug"), "bus") is Result.KO
    assert check(qroc("pomme"), "pome") is Result.OK


def test_empty_and_oversized_answers_are_wrong():
    assert check(qroc("pdf"), "   ") is Result.KO
    assert check(qroc("pdf"), "pdf" + "x" * 10_000) is Result.KO


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3


def qcm():
    return Challenge(id="m", skill_id="@t1", type=ChallengeType.QCM, instruction="?", explanation="!",
                     proposals=("a", "b", "c", "d"), solution_indexes=(1, 3))  # fmt: skip


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1,3", Result.OK), ("3,1", Result.OK), ("1, 3", Result.OK), ("1", Result.KO),
     ("1,2,3", Result.KO), ("1,5", Result.KO), ("x", Result.KO), ("", Result.KO)],
)  # fmt: skip
def test_qcm_is_all_or_nothing(value, expected):
    assert check(qcm(), value) is expected


def qrocm(mode):
    if mode == "ind":
        fields = (Field("a", "Extension", ("pdf",)), Field("b", "Logiciel", ("tableur",)))
        return Challenge(id="i", skill_id="@t1", type=ChallengeType.QROCM, instruction="?",
                         explanation="!", fields=fields, mode="ind")  # fmt: skip
    fields = (Field("a", "Premier"), Field("b", "Second"))
    groups = (("Firefox", "Mozilla Firefox"), ("Chrome", "Google Chrome"), ("Safari",))
    return Challenge(id="d", skill_id="@t1", type=ChallengeType.QROCM, instruction="?",
                     explanation="!", fields=fields, mode="dep", solution_groups=groups)  # fmt: skip


def test_qrocm_ind_checks_each_field_against_its_own_solutions():
    challenge = qrocm("ind")
    assert check(challenge, json.dumps({"a": "PDF", "b": "Tableur"})) is Result.OK
    assert check(challenge, json.dumps({"a": "tableur", "b": "pdf"})) is Result.KO
    assert check(challenge, json.dumps({"a": "pdf", "b": "?"})) is Result.PARTIALLY


def test_qrocm_dep_accepts_any_order_but_not_twice_the_same_answer():
    challenge = qrocm("dep")
    assert check(challenge, json.dumps({"a": "safari", "b": "firefox"})) is Result.OK
    assert (
        check(challenge, json.dumps({"a": "Firefox", "b": "Mozilla Firefox"})) is Result.PARTIALLY
    )
    assert check(challenge, json.dumps({"a": "Opera", "b": "Edge"})) is Result.KO


@pytest.mark.parametrize("value", ["not json", "[1, 2]", '"text"', "{}"])
def test_malformed_qrocm_values_are_wrong_answers(value):
    assert check(qrocm("ind"), value) is Result.KO


@pytest.mark.parametrize("value", ["²", "1,²", "١", "1;3", "9" * 5000, "1," + "3" * 5000])
def test_odd_digits_are_wrong_answers_not_errors(value):
    assert check(qcm(), value) is Result.KO


def test_a_right_answer_padded_with_anything_is_wrong():
    assert check(qroc("guillemets"), "guillemets" + " " * 600 + "n’importe quoi") is Result.KO


def test_spaces_around_punctuation_and_ligatures_are_tolerated_by_t2():
    assert check(qroc("l'ordinateur", tolerances=("t1", "t2")), "l’ ordinateur") is Result.OK
    assert check(qroc("cœur", tolerances=("t1", "t2")), "coeur") is Result.OK
    assert check(qroc("navigateur web", tolerances=("t1", "t2")), "navigateurweb") is Result.KO
