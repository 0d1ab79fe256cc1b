"""The overview's chart as inline SVG geometry: no script, no library, works offline.

Pure arithmetic from taskq.stats.Throughput to the points of three polylines and the
labels of their axes; the template draws them, the stylesheet colours them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from taskq.stats import Throughput

WIDTH = 600
HEIGHT = 180
LEFT = 36  # room for the y labels
BOTTOM = 20  # room for the x labels
TOP = 8


@dataclass(frozen=True)
class Line:
    name: str  # submitted | completed | failed (also its CSS class)
    points: str  # "x,y x,y ..." for <polyline points=...>
    total: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    lines: tuple[Line, ...]
    y_ticks: tuple[tuple[float, int], ...]  # (y, value)
    x_ticks: tuple[tuple[float, str], ...]  # (x, "HH:MM" UTC)
    peak: int
    complete: bool
    plot_left: int = LEFT
    plot_right: int = WIDTH - 4
    plot_bottom: int = HEIGHT - BOTTOM


def per_minute(figures: Throughput) -> Chart:
    """Submitted, completed and failed per minute; the y axis fits the busiest minute."""
    minutes = len(figures.submitted)
    series = {
        "submitted": figures.submitted,
        "completed": figures.completed,
        "failed": figures.failed,
    }
    peak = max([1, *(max(values, default=0) for values in series.values())])
    span_x = WIDTH - 4 - LEFT
    span_y = HEIGHT - BOTTOM - TOP

    def x(minute: int) -> float:
        return round(LEFT + span_x * minute / max(1, minutes - 1), 1)

    def y(value: int) -> float:
        return round(HEIGHT - BOTTOM - span_y * value / peak, 1)

    lines = tuple(
        Line(name, " ".join(f"{x(m)},{y(v)}" for m, v in enumerate(values)), sum(values))
        for name, values in series.items()
    )
    y_ticks = tuple((y(v), v) for v in sorted({0, peak // 2, peak}))
    x_ticks = tuple(
        (x(m), datetime.fromtimestamp(figures.start + 60 * m, UTC).strftime("%H:%M"))
        for m in range(0, minutes, max(1, minutes // 6))
    )
    return Chart(WIDTH, HEIGHT, lines, y_ticks, x_ticks, peak, figures.complete)
