"""Answering the question on screen in the browser, as a student would (right or wrong)."""

from __future__ import annotations

import json

from engine.answers import expected_answer
from engine.content import Challenge, ChallengeType, load_pack

PACK = load_pack()


def challenge_on_screen(page) -> Challenge:
    return PACK.challenge_by_id[
        page.locator("input[name=challenge_id]").first.get_attribute("value")
    ]


def fill_answer(page, *, right: bool) -> None:
    """Fill the answer widget of the question on screen; the caller presses "Je valide"."""
    challenge = challenge_on_screen(page)
    value = expected_answer(challenge)
    if challenge.type is ChallengeType.QCU:
        index = int(value) if right else (int(value) % len(challenge.proposals)) + 1
        page.locator(f"#answer-{index}").check()
    elif challenge.type is ChallengeType.QCM:
        for index in value.split(",") if right else ["1"]:
            page.locator(f"#answer-{index}").check()
    elif challenge.type is ChallengeType.QROC:
        page.locator("#answer").fill(value if right else "je ne sais pas")
    else:
        for name, typed in json.loads(value).items():
            page.locator(f"#field-{name}").fill(typed if right else "?")
