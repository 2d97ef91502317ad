"""Pages of the panel's lists (campaigns, a campaign's participants, learners, team members).

A service counts the list, asks `clamp` for the requested page brought into range, fetches
`per_page` rows from that page's `offset`, and returns `with_items(rows)`:

    listing = pagination.clamp(page, total=total, per_page=per_page)
    rows = session.execute(query.limit(listing.per_page).offset(listing.offset)).all()
    return listing.with_items(rows)

The navigation under each list is the `pagination` macro of `orga/_pagination.html`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Never, TypeVar

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    total: int  # in the whole list
    page: int  # from 1
    per_page: int

    @property
    def pages(self) -> int:
        """At least one: an empty list shows one, empty, page."""
        return max(1, -(-self.total // self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def offset(self) -> int:
        """How many items come before this page."""
        return (self.page - 1) * self.per_page

    def with_items(self, items: Iterable[U]) -> Page[U]:
        return Page(tuple(items), self.total, self.page, self.per_page)


def clamp(requested: int, *, total: int, per_page: int) -> Page[Never]:
    """The page to show, still without its items, when page `requested` of a list of `total`
    items is asked for: the first one when `requested` comes before it, the last one after."""
    last = Page((), total, 1, per_page).pages
    return Page((), total, min(max(requested, 1), last), per_page)
