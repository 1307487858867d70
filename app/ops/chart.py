"""The sync-health chart as inline SVG geometry: stacked bars of dead letters per system over time.

Computed here so the template only draws rectangles: no JavaScript and no chart library (the
console sends no scripts at all). Colours are SVG presentation attributes, which the console's
content security policy allows where inline styles would not be.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT = 720, 160
# One colour per system, readable on white and told apart by people with the common colour blindness.
COLOURS = {
    "shopify": "#1b9e77",
    "smaregi": "#d95f02",
    "hubspot": "#7570b3",
    "email": "#e7298a",
    "consent": "#66a61e",
}
OTHER_COLOUR = "#666666"


@dataclass(frozen=True)
class Rect:
    """One system's part of one bar."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    system: str
    count: int
    start: datetime


@dataclass(frozen=True)
class Chart:
    """What the template draws: the rectangles, the tallest bar's count, and the legend."""

    rects: list[Rect]
    peak: int
    legend: list[tuple[str, str]]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return self.peak == 0


def colour(system: str) -> str:
    return COLOURS.get(system, OTHER_COLOUR)


def stacked_bars(
    bars: Sequence[Counter[str]], systems: Sequence[str], since: datetime, bucket: timedelta
) -> Chart:
    """Bars left (oldest) to right, each stacked in `systems`' order, scaled to the tallest."""
    peak = max((sum(bar.values()) for bar in bars), default=0)
    slot = WIDTH / max(len(bars), 1)
    rects: list[Rect] = []
    for index, bar in enumerate(bars):
        top = float(HEIGHT)
        start = since + bucket * index
        for system in systems:
            count = bar.get(system, 0)
            if not count:
                continue
            height = HEIGHT * count / peak
            top -= height
            rects.append(
                Rect(
                    x=round(index * slot + 1, 2),
                    y=round(top, 2),
                    width=round(max(slot - 2, 1), 2),
                    height=round(height, 2),
                    colour=colour(system),
                    system=system,
                    count=count,
                    start=start,
                )
            )
    return Chart(rects, peak, [(system, colour(system)) for system in systems])
