"""Checking a student's answer against a challenge.

Answer values are the strings the question form sends and the database stores:
QCU "2" (1-based proposal number), QCM "1,3", QROC the typed text, QROCM a JSON object
{"field name": "typed text"}. Skipping ("Je passe") and running out of time are decided by the
caller and never reach `check`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from enum import StrEnum
from functools import lru_cache

from engine.content import Challenge, ChallengeType


class Result(StrEnum):
    OK = "ok"
    KO = "ko"
    PARTIALLY = "partially"  # QROCM with some fields right: not validated
    SKIPPED = "skipped"
    TIMED_OUT = "timedout"

    @property
    def validated(self) -> bool:
        return self is Result.OK


_QUOTES = str.maketrans(
    {
        "’": "'",
        "‘": "'",
        "ʼ": "'",
        "`": "'",
        "“": '"',
        "”": '"',
        "«": '"',
        "»": '"',
        "–": "-",
        "—": "-",
        "\u00a0": " ",
        "\u202f": " ",
    }
)
_NOT_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACES = re.compile(r"\s+")
MAX_ANSWER_LENGTH = 500


def normalize(text: str, tolerances: tuple[str, ...]) -> str:
    """Apply t1 (spaces, case) and t2 (accents, punctuation, typographic quotes)."""
    value = text.translate(_QUOTES)
    if "t2" in tolerances:
        value = value.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
        value = unicodedata.normalize("NFKD", value)
        value = "".join(c for c in value if not unicodedata.combining(c))
        # Punctuation becomes a space, and spaces are collapsed: "l' ordinateur", "l'ordinateur"
        # and "l ordinateur" are one answer.
        value = _SPACES.sub(" ", _NOT_WORD.sub(" ", value)).strip()
    if "t1" in tolerances:
        value = _SPACES.sub(" ", value).strip().casefold()
    return value


def allowed_typos(length: int) -> int:
    if length < 4:
        return 0
    return 1 if length <= 10 else 2


@lru_cache(maxsize=4096)
def edit_distance(a: str, b: str) -> int:
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def matches(typed: str, solutions: tuple[str, ...], tolerances: tuple[str, ...]) -> bool:
    if len(typed) > MAX_ANSWER_LENGTH:
        return False  # never cut: a right answer padded with anything else is not a right answer
    answer = normalize(typed, tolerances)
    if not answer:
        return False
    for solution in solutions:
        expected = normalize(solution, tolerances)
        if answer == expected:
            return True
        if "t3" in tolerances and (edit_distance(answer, expected) <= allowed_typos(len(expected))):
            return True
    return False


def _indexes(value: str) -> set[int] | None:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    # A proposal's number is a few ASCII digits (and int() refuses thousands of them).
    if not parts or not all(p.isascii() and p.isdecimal() and len(p) <= 3 for p in parts):
        return None
    return {int(p) for p in parts}


def check(challenge: Challenge, value: str) -> Result:
    """The verdict on an answer; malformed values are simply wrong answers."""
    if challenge.type is ChallengeType.QCU or challenge.type is ChallengeType.QCM:
        chosen = _indexes(value)
        if chosen is None or not chosen <= set(range(1, len(challenge.proposals) + 1)):
            return Result.KO
        return Result.OK if chosen == set(challenge.solution_indexes) else Result.KO
    if challenge.type is ChallengeType.QROC:
        return Result.OK if matches(value, challenge.solutions, challenge.tolerances) else Result.KO
    return _check_qrocm(challenge, value)


def _check_qrocm(challenge: Challenge, value: str) -> Result:
    try:
        typed = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return Result.KO
    if not isinstance(typed, dict):
        return Result.KO
    answers = [str(typed.get(f.name, "")) for f in challenge.fields]
    if challenge.mode == "ind":
        right = sum(
            matches(answer, field.solutions, challenge.tolerances)
            for answer, field in zip(answers, challenge.fields, strict=True)
        )
    else:
        right = _distinct_groups_matched(answers, challenge)
    if right == len(challenge.fields):
        return Result.OK
    return Result.PARTIALLY if right else Result.KO


def _distinct_groups_matched(answers: list[str], challenge: Challenge) -> int:
    """How many answers can be paired with different solution groups (a maximum matching)."""
    options = [
        [
            g
            for g, group in enumerate(challenge.solution_groups)
            if matches(a, group, challenge.tolerances)
        ]
        for a in answers
    ]
    owner: dict[int, int] = {}

    def assign(i: int, seen: set[int]) -> bool:
        for g in options[i]:
            if g in seen:
                continue
            seen.add(g)
            if g not in owner or assign(owner[g], seen):
                owner[g] = i
                return True
        return False

    return sum(assign(i, set()) for i in range(len(answers)))


def expected_answer(challenge: Challenge) -> str:
    """A correct answer value, in the stored format (for correction screens and tests)."""
    if challenge.type in (ChallengeType.QCU, ChallengeType.QCM):
        return ",".join(str(i) for i in challenge.solution_indexes)
    if challenge.type is ChallengeType.QROC:
        return challenge.solutions[0]
    if challenge.mode == "ind":
        return json.dumps({f.name: f.solutions[0] for f in challenge.fields}, ensure_ascii=False)
    groups = challenge.solution_groups
    return json.dumps(
        {f.name: groups[i][0] for i, f in enumerate(challenge.fields)}, ensure_ascii=False
    )
