"""Small server-side SVG charts: no JavaScript, no library, readable without CSS.

Every label is escaped; numbers are formatted by us. Each chart carries a
<title> and <desc> and a legend, and the figures are also shown in tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = {
    "sends": "#2563eb", "opens": "#059669", "clicks": "#d97706",
    "unsubscribes": "#7c3aed", "bounces": "#dc2626", "readers": "#2563eb",
    "gained": "#059669", "lost": "#dc2626",
}
FALLBACK = ("#0891b2", "#be185d", "#4d7c0f", "#9333ea")


def _color(name: str, index: int) -> str:
    return PALETTE.get(name, FALLBACK[index % len(FALLBACK)])


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _scale(max_value: float, integer: bool) -> tuple[float, int]:
    """The axis top and how many steps to it. Counts get whole-number ticks only
    (no "0.5 readers"): the top is a nice whole number and the step divides it."""
    top = _nice_max(max_value)
    if not integer:
        return top, 4
    whole = max(1, math.ceil(top))
    return float(whole), whole if whole <= 5 else 5


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _frame(title: str, width: int, height: int, body: list[str], legend: list[tuple[str, str]]
           ) -> Markup:
    items = []
    x = 8
    for name, color in legend:
        items.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="{height - 5}" font-size="11">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'font-family="system-ui, sans-serif">'
        f"<title>{escape(title)}</title><desc>{escape(title)}</desc>"
        + "".join(body) + "".join(items) + "</svg>"
    )
    return Markup(svg)  # noqa: S704 - built from escaped labels and formatted numbers


def _axes(width: int, height: int, left: int, top: int, bottom: int, top_value: float,
          steps: int = 4) -> list[str]:
    plot_h = height - top - bottom
    out = []
    for n in range(steps + 1):
        value = top_value * n / steps
        y = top + plot_h - plot_h * n / steps
        out.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#e5e7eb"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                   f'fill="#6b7280">{_fmt(value)}</text>')
    return out


def line_chart(title: str, labels: Sequence[str], series: dict[str, Sequence[float]],
               width: int = 720, height: int = 240, integer: bool = True) -> Markup:
    """One line per series over shared x labels (e.g. days). `integer`: the values
    are counts, so the axis shows whole numbers only."""
    left, top, bottom = 48, 12, 42
    plot_w, plot_h = width - left - 8, height - top - bottom
    top_value, steps = _scale(max((v for vals in series.values() for v in vals), default=0), integer)
    body = _axes(width, height, left, top, bottom, top_value, steps)
    count = max(len(labels), 1)
    step = plot_w / max(count - 1, 1)
    every = max(1, count // 8)
    for i, label in enumerate(labels):
        if i % every == 0:
            body.append(f'<text x="{left + i * step:.1f}" y="{height - 28}" font-size="10" '
                        f'text-anchor="middle" fill="#6b7280">{escape(label)}</text>')
    legend = []
    for index, (name, values) in enumerate(series.items()):
        color = _color(name, index)
        legend.append((name, color))
        points = " ".join(f"{left + i * step:.1f},{top + plot_h - plot_h * v / top_value:.1f}"
                          for i, v in enumerate(values))
        if points:
            body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                        f'points="{points}"><title>{escape(name)}</title></polyline>')
    return _frame(title, width, height, body, legend)


def bar_chart(title: str, groups: Sequence[tuple[str, dict[str, float]]],
              width: int = 720, height: int = 240, integer: bool = True) -> Markup:
    """Grouped bars: one group per label (e.g. edition), one bar per series.
    Negative values (net growth) are drawn as zero-height bars with their figure."""
    left, top, bottom = 48, 12, 42
    plot_w, plot_h = width - left - 8, height - top - bottom
    names = list(dict.fromkeys(name for _, values in groups for name in values))
    top_value, steps = _scale(max((v for _, values in groups for v in values.values()), default=0),
                              integer)
    body = _axes(width, height, left, top, bottom, top_value, steps)
    group_w = plot_w / max(len(groups), 1)
    bar_w = max(2.0, (group_w - 8) / max(len(names), 1))
    for g, (label, values) in enumerate(groups):
        x0 = left + g * group_w + 4
        for index, name in enumerate(names):
            value = values.get(name, 0)
            h = plot_h * max(value, 0) / top_value
            body.append(
                f'<rect x="{x0 + index * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{_color(name, index)}">'
                f"<title>{escape(label)} {escape(name)}: {_fmt(value)}</title></rect>")
        body.append(f'<text x="{x0 + (group_w - 8) / 2:.1f}" y="{height - 28}" font-size="10" '
                    f'text-anchor="middle" fill="#6b7280">{escape(label[:14])}</text>')
    legend = [(name, _color(name, i)) for i, name in enumerate(names)]
    return _frame(title, width, height, body, legend)
