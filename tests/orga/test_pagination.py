"""The page arithmetic shared by the panel's lists."""

from __future__ import annotations

import pytest

from campaigns.shared import pagination
from campaigns.shared.pagination import Page


def test_an_empty_list_has_one_empty_page():
    page = pagination.clamp(1, total=0, per_page=25)
    assert (page.page, page.pages, page.offset, page.items) == (1, 1, 0, ())
    assert not page.has_previous and not page.has_next


@pytest.mark.parametrize(("total", "pages"), [(1, 1), (24, 1), (25, 1), (26, 2), (50, 2), (51, 3)])
def test_pages_round_up(total, pages):
    assert Page((), total, 1, 25).pages == pages


@pytest.mark.parametrize("requested", [0, -3])
def test_a_page_before_the_first_is_the_first(requested):
    assert pagination.clamp(requested, total=60, per_page=25).page == 1


@pytest.mark.parametrize("requested", [4, 999_999])
def test_a_page_past_the_last_is_the_last(requested):
    assert pagination.clamp(requested, total=60, per_page=25).page == 3


def test_a_page_in_range_is_kept_and_starts_after_the_pages_before_it():
    page = pagination.clamp(2, total=60, per_page=25)
    assert (page.page, page.offset, page.per_page, page.total) == (2, 25, 25, 60)
    assert pagination.clamp(3, total=60, per_page=25).offset == 50


def test_previous_and_next():
    first, middle, last = (pagination.clamp(n, total=60, per_page=25) for n in (1, 2, 3))
    assert (first.has_previous, first.has_next) == (False, True)
    assert (middle.has_previous, middle.has_next) == (True, True)
    assert (last.has_previous, last.has_next) == (True, False)


def test_items_fill_the_page_and_keep_its_place():
    page = pagination.clamp(2, total=3, per_page=2).with_items(iter(["c"]))
    assert page == Page(("c",), 3, 2, 2)
