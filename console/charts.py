"""Small server-side SVG charts: bars (stacked or not) and lines over a shared x axis.

No JavaScript and nothing fetched at run time; colours come from CSS classes (console/static/console/console.css),
so the charts follow the admin's light and dark themes. Every mark has a ``<title>`` (a tooltip on hover).
"""

import dataclasses
import math
from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 12, 26, 24
# Axis titles: the y axis's unit above its ticks (top left), the x axis's at the bottom left, under the ticks.


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    css_class: str


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (a round top for the y axis)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover


def _number(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1_000:.0f}k"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.2f}"


def _frame(
    labels, series, *, width, height, y_max, y_format, label_every, title, x_label="", y_label="", integer=False
) -> tuple[list[str], Callable, Callable, float]:
    """The chart's opening: svg element, title, axes, grid, x labels and (for more than one series) a legend.
    Returns those parts, the x of a label's slot and the y of a value, and the width of one slot."""
    legend = [(s.name, s.css_class) for s in series] if len(series) > 1 else []
    plot_w = width - PAD_LEFT - PAD_RIGHT
    plot_h = height - PAD_TOP - PAD_BOTTOM
    n = max(len(labels), 1)
    slot = plot_w / n

    def x_of(i: int) -> float:
        return PAD_LEFT + slot * i

    def y_of(v: float) -> float:
        return PAD_TOP + plot_h - (min(v, y_max) / y_max) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    # Counts get whole-number ticks only: the middle tick is left out when it would fall between two integers.
    fractions = (0, 1) if integer and (y_max / 2) != int(y_max / 2) else (0, 0.5, 1)
    if y_label:
        parts.append(f'<text class="axis axis-title" x="4" y="12">{escape(y_label)}</text>')
    if x_label:
        parts.append(f'<text class="axis axis-title" x="4" y="{height - 6}">{escape(x_label)}</text>')
    for fraction in fractions:
        y = y_of(y_max * fraction)
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{width - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(y_format(y_max * fraction))}</text>"
        )
    for i, label in enumerate(labels):
        if i % label_every == 0:
            parts.append(
                f'<text class="axis" x="{x_of(i) + slot / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    x = width - PAD_RIGHT
    for name, css_class in reversed(legend):
        x -= 10 + 6.2 * len(name) + 16
        parts.append(f'<rect class="{css_class}" x="{x:.1f}" y="6" width="10" height="10" rx="2"/>')
        parts.append(f'<text class="legend" x="{x + 14:.1f}" y="15">{escape(name)}</text>')
    return parts, x_of, y_of, slot


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    stacked: bool = True,
    width: int = 520,
    height: int = 180,
    y_format: Callable[[float], str] = _number,
    label_every: int = 1,
    x_label: str = "",
    y_label: str = "",
    integer: bool = False,
) -> SafeString:
    """Bars per label, one colour per series, stacked (or side by side)."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    peak = max(totals or [0]) if stacked else max((v or 0 for s in series for v in s.values), default=0)
    y_max = max(_nice_max(peak), 2) if integer else _nice_max(peak)
    parts, x_of, y_of, slot = _frame(
        labels,
        series,
        x_label=x_label,
        y_label=y_label,
        integer=integer,
        width=width,
        height=height,
        y_max=y_max,
        y_format=y_format,
        label_every=label_every,
        title=title,
    )
    gap = max(slot * 0.15, 1)
    for i, label in enumerate(labels):
        base = 0.0
        for k, s in enumerate(series):
            value = s.values[i] or 0
            if not value:
                continue
            if stacked:
                x, w = x_of(i) + gap / 2, slot - gap
                top, bottom = y_of(base + value), y_of(base)
                base += value
            else:
                w = (slot - gap) / len(series)
                x = x_of(i) + gap / 2 + k * w
                top, bottom = y_of(value), y_of(0)
            parts.append(
                f'<rect class="bar {s.css_class}" x="{x:.1f}" y="{top:.1f}" width="{max(w, 0.5):.1f}" '
                f'height="{max(bottom - top, 0.5):.1f}"><title>{escape(label)}: {escape(s.name)} '
                f"{escape(y_format(value))}</title></rect>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped above


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    y_max: float | None = None,
    width: int = 520,
    height: int = 180,
    y_format: Callable[[float], str] = _number,
    label_every: int = 1,
    x_label: str = "",
    y_label: str = "",
) -> SafeString:
    """Lines with a dot per point; a None value breaks the line (no data in that bucket)."""
    peak = max((v for s in series for v in s.values if v is not None), default=0)
    top = y_max if y_max is not None else _nice_max(peak)
    parts, x_of, y_of, slot = _frame(
        labels,
        series,
        x_label=x_label,
        y_label=y_label,
        width=width,
        height=height,
        y_max=top,
        y_format=y_format,
        label_every=label_every,
        title=title,
    )
    for s in series:
        segments, current = [], []
        for i, value in enumerate(s.values):
            if value is None:
                if current:
                    segments.append(current)
                current = []
                continue
            current.append((x_of(i) + slot / 2, y_of(value), labels[i], value))
        if current:
            segments.append(current)
        for segment in segments:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in segment)
            parts.append(f'<polyline class="line {s.css_class}" points="{points}"/>')
            for x, y, label, value in segment:
                parts.append(
                    f'<circle class="dot {s.css_class}" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                    f"<title>{escape(label)}: {escape(s.name)} {escape(y_format(value))}</title></circle>"
                )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped above


def percent(value: float) -> str:
    return f"{value:.0%}"
