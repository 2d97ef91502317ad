"""Charts for the teacher panel, drawn on the server: no JavaScript, no external resource, no
inline style (the CSP forbids it: geometry goes in SVG attributes, layout in parcours.css).

They must stay readable from a 320 px phone to a desktop, so nothing is drawn in a fixed
`viewBox` that would scale text down with the chart. Instead:

- `bar_chart` (a few categories) is HTML: each label on its own line, in full (it wraps, it is
  never cut), then a bar drawn by a small SVG whose width is 100 % of a grid column and whose
  rectangle's length is a percentage, then the value in its own column, never over the bar;
- `column_chart` (a time series, one or two series side by side) is one SVG `width="100%"`
  without `viewBox`: horizontal positions are percentages, heights and text sizes are pixels,
  so text keeps its size whatever the width. Dates under the columns are thinned out so that
  they fit the narrowest screen (`NARROWEST` px; a second, denser set replaces them on wide
  screens), values above the columns are written only when they fit there too (otherwise a
  dotted line marks the largest value); the second series is hatched as well as coloured, and
  a legend names both.

Each chart is one element with `role="img"` whose `aria-label` carries its title and all its
figures (what a screen reader announces); the pages show the same figures in a table next to
each chart. Every count is a full phrase the caller builds with `ngettext` ("1 participant",
"2 participants"). Colours pass WCAG AA on white (text ≥ 4.5:1, bars ≥ 3:1). Every text that
comes from data is escaped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flask_babel import gettext as _
from markupsafe import Markup, escape

INK = "#1b1b2f"  # text: 16.9:1 on white
GRID = "#6b6b80"  # axis and grid lines: 5.2:1 on white
SERIES_COLOURS = (
    "#2a3fb5",  # blue, solid: 8.5:1 on white
    "#b54708",  # orange, hatched: 5.4:1 on white (and told apart from the blue by its hatching)
)
TEXT_PX = 13  # text in the time series' SVG, in CSS pixels whatever the screen
NARROWEST = 240  # px: a chart's width on a 320 px screen, less the page's and figure's margins
WIDE = 600  # px: a chart's width at least, on a screen of 48rem and more (see parcours.css)
PLOT_TOP, PLOT_HEIGHT, PLOT_BOTTOM = 22, 150, 26  # px: scale, columns, dates (198: parcours.css)
BAR_HEIGHT = 20  # px: one bar of a bar chart

ValueText = Callable[[float], str]


def _ident(title: str, ident: str | None) -> str:
    if ident:
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in ident)
    return "chart-" + hashlib.sha1(title.encode(), usedforsecurity=False).hexdigest()[:8]


def _number(value: float) -> str:
    """Integers as such, other values with one decimal (French decimal comma)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}".replace(".", ",")


def _text_width(text: str, size: float = TEXT_PX) -> float:
    """A generous estimate of a text's width in px (0.62 em a character, wider than the digits
    and most letters of the system fonts), to decide whether it fits."""
    return len(text) * size * 0.62


def _percent(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") + "%"


def _pair(label: str, value: str) -> str:
    return str(_("%(label)s : %(value)s", label=label, value=value))


def _sentence(title: str, parts: Sequence[str]) -> str:
    """The accessible text: the title, then a sentence per figure (in French and English)."""
    return ". ".join([title, *parts]) if parts else f"{title}. —"


def _aria_label(text: str) -> str:
    return str(escape(text))


def describe(items: Sequence[tuple[str, float]], value_text: ValueText) -> list[str]:
    """Every figure of a bar chart, as "label : 3 participants"."""
    return [_pair(label, value_text(value)) for label, value in items]


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    value_text: ValueText = _number,
    ident: str | None = None,
    max_value: float | None = None,
) -> Markup:
    """Horizontal bars, one per item: the full label on its own line, then the bar (its length
    a percentage of the largest value) and the value beside it."""
    ident = _ident(title, ident)
    top = max([max_value or 0.0, *(value for _, value in items)]) or 1.0
    label = _sentence(title, describe(items, value_text))
    parts = [f'<div class="chart-bars" id="{ident}" role="img" aria-label="{_aria_label(label)}">']
    for text, value in items:
        length = 100 * max(0.0, value) / top
        bar = (
            f'<rect x="0" y="0" width="{_percent(length)}" height="{BAR_HEIGHT}"'
            f' fill="{SERIES_COLOURS[0]}"/>'
            if length
            else ""
        )
        parts += [
            f'<div class="chart-label">{escape(text)}</div>',
            f'<svg class="chart-track" width="100%" height="{BAR_HEIGHT}" aria-hidden="true">'
            f'<line x1="1" y1="0" x2="1" y2="{BAR_HEIGHT}" stroke="{GRID}" stroke-width="2"/>'
            f"{bar}</svg>",
            f'<div class="chart-value">{escape(value_text(value))}</div>',
        ]
    if not items:
        parts.append('<div class="chart-label">—</div>')
    parts.append("</div>")
    return Markup("".join(parts))  # noqa: S704 - every data-derived text above is escaped


@dataclass(frozen=True)
class Series:
    """One series of a time series: its name (in the legend), a value per column, and the
    phrase of a value in the accessible text ("2 résultats reçus")."""

    name: str
    values: Sequence[float]
    value_text: ValueText = _number


def _key(ident: str, index: int) -> str:
    """The look of a series: solid for the first, hatched (and outlined) for the second."""
    colour = SERIES_COLOURS[index]
    if index == 0:
        return f'fill="{colour}"'
    return f'fill="url(#{ident}-hatch)" stroke="{colour}" stroke-width="1.5"'


def _hatch(ident: str) -> str:
    return (
        f'<pattern id="{ident}-hatch" width="6" height="6" patternUnits="userSpaceOnUse"'
        f' patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
        f'<rect width="3" height="6" fill="{SERIES_COLOURS[1]}"/></pattern>'
    )


def _ticks(count: int, widest: float, room: float) -> list[int]:
    """The columns whose date is written on a chart `room` px wide: all when they fit side by
    side, otherwise evenly spaced ones, first and last included."""
    step = widest + 10
    if count * step <= room:
        return list(range(count))
    shown = max(2, math.floor(room / (step + 8)))
    if count <= shown:
        return list(range(count))
    return sorted({round(i * (count - 1) / (shown - 1)) for i in range(shown)})


def _tick_labels(labels: Sequence[str], ticks: list[int], y: float) -> str:
    count = len(labels)
    slot = 100 / count
    parts = []
    for index in ticks:
        if len(ticks) == count or 0 < index < count - 1:
            x, anchor = index * slot + slot / 2, "middle"
        elif index == 0:
            x, anchor = 0.0, "start"
        else:
            x, anchor = 100.0, "end"
        parts.append(
            f'<text x="{_percent(x)}" y="{y}" text-anchor="{anchor}">{escape(labels[index])}</text>'
        )
    return "".join(parts)


def column_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    long_labels: Sequence[str] | None = None,
    ident: str | None = None,
) -> Markup:
    """Columns in order (a time series), one or two series side by side in each slot, with a
    legend. `labels` go under the columns ("12/11"); `long_labels` ("12 novembre 2024") name the
    columns in the accessible text."""
    if not 1 <= len(series) <= len(SERIES_COLOURS):
        raise ValueError("column_chart draws one or two series")
    ident = _ident(title, ident)
    count = len(labels)
    named = long_labels or labels
    figures = [
        _pair(named[i], ", ".join(s.value_text(s.values[i]) for s in series)) for i in range(count)
    ]
    parts = [
        f'<div class="chart-columns" id="{ident}" role="img"'
        f' aria-label="{_aria_label(_sentence(title, figures))}">'
    ]
    if len(series) > 1:
        parts.append('<ul class="chart-legend">')
        for index, one in enumerate(series):
            parts.append(
                '<li><svg class="chart-key" width="18" height="14" aria-hidden="true">'
                + (f"<defs>{_hatch(ident + '-key')}</defs>" if index else "")
                + f'<rect x="1" y="1" width="16" height="12" {_key(ident + "-key", index)}/>'
                f"</svg> {escape(one.name)}</li>"
            )
        parts.append("</ul>")

    height = PLOT_TOP + PLOT_HEIGHT + PLOT_BOTTOM
    base = PLOT_TOP + PLOT_HEIGHT
    top = max([0.0, *(v for s in series for v in s.values)]) or 1.0
    slot = 100 / max(1, count)  # % of the width for one date
    pad = slot * 0.12
    bar = (slot - 2 * pad) / len(series)
    # Values above the columns only when the widest fits above its column on a narrow screen.
    widest_value = max((_text_width(_number(v)) for s in series for v in s.values), default=0)
    with_values = widest_value <= NARROWEST * slot / 100 / len(series) - 2
    parts.append(
        f'<svg class="chart-plot" width="100%" height="{height}" font-size="{TEXT_PX}"'
        f' fill="{INK}" aria-hidden="true">'
    )
    if len(series) > 1:
        parts.append(f"<defs>{_hatch(ident)}</defs>")
    if not with_values:  # the scale: a dotted line at the largest value, labelled
        parts.append(
            f'<line x1="0" y1="{PLOT_TOP}" x2="100%" y2="{PLOT_TOP}" stroke="{GRID}"'
            f' stroke-width="1" stroke-dasharray="3 3"/>'
            f'<text x="0" y="{PLOT_TOP - 6}">{escape(_number(top))}</text>'
        )
    for index in range(count):
        for rank, one in enumerate(series):
            value = max(0.0, one.values[index])
            size = round(PLOT_HEIGHT * value / top, 1)
            x = index * slot + pad + rank * bar
            if size:
                parts.append(
                    f'<rect x="{_percent(x)}" y="{base - size}" width="{_percent(bar)}"'
                    f' height="{size}" {_key(ident, rank)}/>'
                )
            if with_values:
                parts.append(
                    f'<text x="{_percent(x + bar / 2)}" y="{base - size - 5}"'
                    f' text-anchor="middle">{escape(_number(value))}</text>'
                )
    parts.append(
        f'<line x1="0" y1="{base}" x2="100%" y2="{base}" stroke="{GRID}" stroke-width="1.5"/>'
    )
    widest_label = max((_text_width(label) for label in labels), default=0)
    narrow, wide = _ticks(count, widest_label, NARROWEST), _ticks(count, widest_label, WIDE)
    if wide == narrow:
        parts.append(_tick_labels(labels, narrow, base + 18))
    else:  # more dates on a wide screen (parcours.css swaps the groups); phones by default
        parts.append(
            f'<g class="chart-ticks-narrow">{_tick_labels(labels, narrow, base + 18)}</g>'
            f'<g class="chart-ticks-wide" display="none">{_tick_labels(labels, wide, base + 18)}</g>'
        )
    parts.append("</svg></div>")
    return Markup("".join(parts))  # noqa: S704 - every data-derived text above is escaped
