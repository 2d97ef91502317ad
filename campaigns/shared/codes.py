"""Campaign codes: 6 letters and 3 digits from an alphabet a student cannot misread."""

from __future__ import annotations

import secrets

CODE_LETTERS = "ABCDEFGHJKMNPQRSTUVWXYZ"  # no I, L, O: never mistaken for 1 or 0


CODE_DIGITS = "23456789"  # no 0, 1


def generate_code() -> str:
    """6 letters and 3 digits from an alphabet a student cannot misread."""
    letters = "".join(secrets.choice(CODE_LETTERS) for _ in range(6))
    return letters + "".join(secrets.choice(CODE_DIGITS) for _ in range(3))


def normalize_code(raw: str) -> str | None:
    """A typed code in canonical form, or None when it cannot be a campaign code."""
    code = "".join(raw.split()).upper()
    if len(code) != 9 or not all(c in CODE_LETTERS for c in code[:6]):
        return None
    if not all(c in CODE_DIGITS for c in code[6:]):
        return None
    return code
