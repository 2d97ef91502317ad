"""Server-side SVG charts for the teacher panel: no JavaScript, no external resource.

Every chart is an `<svg role="img">` named by its `<title>` and described by a `<desc>` that
carries all of its figures (what a screen reader announces); labels and values are real text
(zoomable, selectable); the colours pass WCAG AA contrast on white (bars ≥ 3:1 as graphics, text
≥ 4.5:1). Pages still show the same figures in a table beside each chart. Every text that comes
from data is escaped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

INK = "#1b1b2f"  # text: 16:1 on white
BAR = "#2a3fb5"  # bars: 7.9:1 on white
GRID = "#6b6b80"  # axis: 5.3:1 on white
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
MAX_LABEL_CHARS = 30


def default_format(value: float) -> str:
    """Integers as such, other values with one decimal (French decimal comma)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}".replace(".", ",")


def _ident(title: str, ident: str | None) -> str:
    if ident:
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in ident)
    return "chart-" + hashlib.sha1(title.encode(), usedforsecurity=False).hexdigest()[:8]


def _short(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _open(ident: str, width: int, height: int, title: str, description: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" role="img"'
        f' aria-labelledby="{ident}-title {ident}-desc" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" font-family="{FONT}" font-size="14" fill="{INK}">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
    ]


def describe(
    items: Sequence[tuple[str, float]], unit: str, value_format: Callable[[float], str]
) -> str:
    """All the figures of a chart, as one sentence."""
    if not items:
        return "—"
    return " ; ".join(f"{label} : {value_format(value)} {unit}".rstrip() for label, value in items)


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    description: str | None = None,
    ident: str | None = None,
    max_value: float | None = None,
    value_format: Callable[[float], str] = default_format,
) -> Markup:
    """Horizontal bars, one per item: the label on the left, the value written after the bar."""
    ident = _ident(title, ident)
    label_width, bar_width, value_width, row, gap = 230, 330, 80, 26, 8
    width = label_width + bar_width + value_width
    height = max(1, len(items)) * (row + gap) + gap
    top = max([max_value or 0.0, *(value for _, value in items)]) or 1.0
    parts = _open(ident, width, height, title, description or describe(items, unit, value_format))
    parts.append(
        f'<line x1="{label_width}" y1="0" x2="{label_width}" y2="{height}"'
        f' stroke="{GRID}" stroke-width="1"/>'
    )
    for index, (label, value) in enumerate(items):
        y = gap + index * (row + gap)
        length = round(bar_width * max(0.0, value) / top, 1)
        middle = y + row / 2
        parts.append(
            f'<text x="{label_width - 8}" y="{middle}" text-anchor="end"'
            f' dominant-baseline="middle">{escape(_short(label))}</text>'
        )
        parts.append(
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{row}" fill="{BAR}"/>'
        )
        parts.append(
            f'<text x="{label_width + length + 6}" y="{middle}" dominant-baseline="middle">'
            f"{escape((value_format(value) + ' ' + unit).rstrip())}</text>"
        )
    if not items:
        parts.append(f'<text x="{label_width + 8}" y="{height / 2}">—</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every data-derived text above is escaped


def column_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    description: str | None = None,
    ident: str | None = None,
    value_format: Callable[[float], str] = default_format,
) -> Markup:
    """Vertical columns in order (a time series): labels under the columns, thinned out when
    there are many; values on top of the columns when they fit."""
    ident = _ident(title, ident)
    count = max(1, len(items))
    left, bottom, top_margin, plot_height = 48, 40, 24, 200
    column = max(6, min(48, 640 // count))
    width = left + count * column + 16
    height = top_margin + plot_height + bottom
    top = max([0.0, *(value for _, value in items)]) or 1.0
    every = max(1, -(-64 // column))  # at most one label per ~64 px
    parts = _open(ident, width, height, title, description or describe(items, unit, value_format))
    base = top_margin + plot_height
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width - 8}" y2="{base}" stroke="{GRID}"'
        f' stroke-width="1"/>'
    )
    parts.append(
        f'<text x="{left - 6}" y="{top_margin}" text-anchor="end" dominant-baseline="middle"'
        f' font-size="12">{escape(value_format(top))}</text>'
    )
    parts.append(
        f'<text x="{left - 6}" y="{base}" text-anchor="end" dominant-baseline="middle"'
        f' font-size="12">0</text>'
    )
    for index, (label, value) in enumerate(items):
        x = left + index * column
        bar_height = round(plot_height * max(0.0, value) / top, 1)
        parts.append(
            f'<rect x="{x + 1}" y="{base - bar_height}" width="{column - 2}"'
            f' height="{bar_height}" fill="{BAR}"/>'
        )
        center = x + column / 2
        if column >= 24 and value:
            parts.append(
                f'<text x="{center}" y="{base - bar_height - 4}" text-anchor="middle"'
                f' font-size="12">{escape(value_format(value))}</text>'
            )
        if index % every == 0:
            parts.append(
                f'<text x="{center}" y="{base + 18}" text-anchor="middle" font-size="12">'
                f"{escape(_short(label, 12))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every data-derived text above is escaped
