"""Comparing people's names as a school's list and an ENT or LMS write them."""

from __future__ import annotations

import re
import unicodedata


def normalize_name(name: str) -> str:
    """Lowercase ASCII letters and single spaces: "Lé-a  O'Neil" → "le a o neil"."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", folded).split())
