"""Numbers read from requests: ids in URLs, pages and ids in query strings and forms.

A number typed by anyone is read only when it is a few ASCII digits within bounds; anything
else — thousands of digits (`int()` refuses more than 4,300), ids past what the database's
integers hold (PostgreSQL `integer`: 2**31 - 1; SQLite: 2**63 - 1), "９" or "٣" — is no number:
the route does not exist (404) or the default applies, never a 500.
"""

from __future__ import annotations

from typing import TypeVar

from werkzeug.routing import IntegerConverter, Map

# The largest id of an `Integer` primary key on PostgreSQL (and thus the largest anywhere).
MAX_ID = 2**31 - 1

T = TypeVar("T")


class BoundedIntConverter(IntegerConverter):
    """`<int:…>` in every route: 1 to 10 ASCII digits, at most MAX_ID unless the rule says
    otherwise. Installed as the app's `int` converter, so no route can forget it."""

    regex = r"[0-9]{1,10}"

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, MAX_ID if max is None else max, signed)


def parse_int(raw: str | None, default: T, *, low: int = 1, high: int = MAX_ID) -> int | T:
    """`raw` as a number when it is written in ASCII digits and lies in [low, high], else
    `default` (query strings and form fields: `parse_int(request.args.get("page"), 1)`)."""
    if not raw or len(raw) > len(str(high)) or not (raw.isascii() and raw.isdecimal()):
        return default
    value = int(raw)
    return value if low <= value <= high else default
