"""Server-side SVG charts for the console: weekly stacked bars with a threshold, score lines.

The SVG uses presentation attributes and CSS classes only (no style attributes, no script), so
it is inlined in pages under the console's Content Security Policy and reads without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

SERIES_CLASSES = 8  # .series-0 .. .series-7 in console.css; further series share the last


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: tuple[int, ...]
    css: str | None = None  # a fixed colour class (e.g. for a context), else by position


@dataclass(frozen=True, slots=True)
class Chart:
    svg: Markup
    legend: tuple[tuple[str, str], ...]  # (label, css class)


def series_class(index: int) -> str:
    return f"series-{min(index, SERIES_CLASSES - 1)}"


def nice_scale(peak: float, *, max_ticks: int = 5) -> tuple[float, float]:
    """(top, step) of a count axis: the step is 1, 2 or 5 x 10^k (never below 1, counts are
    whole) and the top the first multiple of it at or above the peak."""
    step = 1.0
    while peak / step > max_ticks:
        for factor in (2.0, 2.5, 2.0):  # 1 -> 2 -> 5 -> 10 -> 20 -> 50 ...
            step *= factor
            if peak / step <= max_ticks:
                break
    top = max(step, math.ceil(peak / step) * step)
    return top, step


def _ticks(top: float, step: float) -> list[float]:
    return [step * i for i in range(round(top / step) + 1)]


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _week_label(day: date) -> str:
    return f"{day.day} {day.strftime('%b')}"


def weekly_bars(
    weeks: Sequence[date],
    series: Sequence[Series],
    threshold: Sequence[float | None],
    *,
    label: str,
    threshold_label: str,
    width: int = 720,
    height: int = 240,
) -> Chart:
    """Stacked weekly counts (one colour per series) with the threshold drawn as a dashed step
    line; weeks whose total exceeds the threshold get a marker above the bar."""
    left, right, top, bottom = 40, 12, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(weeks)
    totals = [sum(s.values[i] for s in series) for i in range(n)]
    peak = max([*totals, *(t for t in threshold if t is not None), 1])
    y_max, y_step = nice_scale(peak * 1.05)

    def y(value: float) -> float:
        return top + plot_h - plot_h * value / y_max

    step = plot_w / max(n, 1)
    bar = max(step * 0.72, 1.0)
    parts: list[str] = []
    for tick in _ticks(y_max, y_step):
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{_number(tick)}</text>'
        )
    label_every = max(1, math.ceil(n / 9))
    for i, week in enumerate(weeks):
        x = left + i * step + (step - bar) / 2
        base = 0.0
        pieces = []
        for index, s in enumerate(series):
            value = s.values[i]
            if not value:
                continue
            y_top = y(base + value)
            pieces.append(
                f'<rect class="{s.css or series_class(index)}" x="{x:.1f}" y="{y_top:.1f}" '
                f'width="{bar:.1f}" height="{y(base) - y_top:.1f}">'
                f"<title>{escape(s.label)}: {value} in the week of {week.isoformat()}</title>"
                "</rect>"
            )
            base += value
        parts.extend(pieces)
        limit = threshold[i] if i < len(threshold) else None
        if limit is not None and totals[i] > limit:
            cx, cy = x + bar / 2, y(totals[i]) - 7
            parts.append(
                f'<path class="alarm" d="M{cx - 4:.1f},{cy - 5:.1f} L{cx + 4:.1f},{cy - 5:.1f} '
                f'L{cx:.1f},{cy + 1:.1f} Z"><title>{totals[i]} above the threshold '
                f"{limit:.1f} in the week of {week.isoformat()}</title></path>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text class="axis" x="{x + bar / 2:.1f}" y="{height - 10}" '
                f'text-anchor="middle">{_week_label(week)}</text>'
            )
    path: list[str] = []
    for i in range(n):
        limit = threshold[i] if i < len(threshold) else None
        if limit is None:
            continue
        x0, x1 = left + i * step, left + (i + 1) * step
        previous = threshold[i - 1] if i > 0 and i - 1 < len(threshold) else None
        path.append(f"{'L' if previous is not None else 'M'}{x0:.1f},{y(limit):.1f}")
        path.append(f"L{x1:.1f},{y(limit):.1f}")
    if path:
        parts.append(
            f'<path class="threshold" d="{" ".join(path)}"><title>{escape(threshold_label)}'
            "</title></path>"
        )
    parts.append(
        f'<line class="baseline" x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>'
    )
    total = sum(totals)
    summary = f"{label}: {total} detections over {n} weeks"
    svg = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(summary)}" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(summary)}</title>{''.join(parts)}</svg>"
    )
    legend = tuple((s.label, s.css or series_class(i)) for i, s in enumerate(series))
    if path:
        legend += ((threshold_label, "threshold-key"),)
    return Chart(Markup(svg), legend)


def score_line(
    points: Sequence[tuple[date, float]],
    levels: Sequence[tuple[str, float]],
    *,
    width: int = 720,
    height: int = 160,
) -> Markup:
    """Daily threat score (0-100) with the level thresholds as labelled horizontal lines."""
    left, right, top, bottom = 40, 70, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(value: float) -> float:
        return top + plot_h - plot_h * value / 100.0

    parts: list[str] = []
    for name, value in levels:
        parts.append(
            f'<line class="level-line level-{escape(name)}" x1="{left}" x2="{width - right}" '
            f'y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="axis level-text-{escape(name)}" x="{width - right + 6}" '
            f'y="{y(value) + 4:.1f}">{escape(name)} {value:g}</text>'
        )
    for tick in (0, 50, 100):
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
            f"{tick}</text>"
        )
    if points:
        n = len(points)
        step = plot_w / max(n - 1, 1)
        coordinates = [
            (left + i * step if n > 1 else left + plot_w / 2, y(score))
            for i, (_, score) in enumerate(points)
        ]
        line = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in coordinates)
        parts.append(f'<polyline class="score-line" points="{line}"/>')
        for (day, score), (x, yy) in zip(points, coordinates, strict=True):
            parts.append(
                f'<circle class="score-point" cx="{x:.1f}" cy="{yy:.1f}" r="2.5">'
                f"<title>{day.isoformat()}: {score:.1f}</title></circle>"
            )
        first, last = points[0][0], points[-1][0]
        parts.append(
            f'<text class="axis" x="{left}" y="{height - 8}">{first.isoformat()}</text>'
            f'<text class="axis" x="{left + plot_w}" y="{height - 8}" text-anchor="end">'
            f"{last.isoformat()}</text>"
        )
        summary = f"Threat score from {points[0][1]:.1f} to {points[-1][1]:.1f} over {n} days"
    else:
        summary = "No threat score recorded yet"
    return Markup(
        f'<svg class="chart score-chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>{"".join(parts)}</svg>'
    )


def meter(value: float, weight: float, max_weight: float, *, width: int = 160) -> Markup:
    """A component's bar: the track is as long as its weight, the fill is value x weight."""
    track = width * (weight / max_weight if max_weight else 0.0)
    fill = track * max(0.0, min(1.0, value))
    return Markup(
        f'<svg class="meter" viewBox="0 0 {width} 10" width="{width}" height="10" '
        f'aria-hidden="true"><rect class="meter-track" x="0" y="0" width="{track:.1f}" '
        f'height="10" rx="2"/><rect class="meter-fill" x="0" y="0" width="{fill:.1f}" '
        f'height="10" rx="2"/></svg>'
    )


def score_bar(score: float, level: str, *, width: int = 64) -> Markup:
    """A small 0-100 bar coloured by level, for queue rows."""
    fill = width * max(0.0, min(100.0, score)) / 100.0
    return Markup(
        f'<svg class="score-bar" viewBox="0 0 {width} 6" width="{width}" height="6" '
        f'aria-hidden="true"><rect class="meter-track" width="{width}" height="6" rx="3"/>'
        f'<rect class="fill-{escape(level)}" width="{fill:.1f}" height="6" rx="3"/></svg>'
    )
