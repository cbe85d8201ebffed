"""Report cells and tables: percentages, intervals, paired differences, figures over seeds.

One home for how a figure is written, so the pipeline's report, the study's and the bench table read
alike: ``pct(0.276)`` is ``27.6``; ``pct_interval(0.276, 0.231, 0.321)`` is ``27.6 [23.1, 32.1]``;
``with_interval(0.025, -0.005, 0.055)`` is ``+2.5 [-0.5, +5.5]`` (points); ``diff_cell`` adds `` *`` where
the interval excludes 0. A missing or NaN value is ``–``. ``seed_interval`` is a figure's mean over seeds
with its 95% interval over seeds; ``table`` lays out a Markdown table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MISSING = "–"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pct(value: float | None, digits: int = 1) -> str:
    """A rate in percent: ``27.6``."""
    return f"{100 * value:.{digits}f}" if _finite(value) else MISSING


def signed(value: float | None, scale: float = 100.0, digits: int = 1) -> str:
    """A difference with its sign, by default in points: ``+2.5``."""
    return f"{scale * value:+.{digits}f}" if _finite(value) else MISSING


def pct_interval(value: float | None, low: float | None = None, high: float | None = None, digits: int = 1) -> str:
    """A rate and its interval in percent, ``47.0 [38.0, 57.0]``; the rate alone without both bounds."""
    if not (_finite(low) and _finite(high)):
        return pct(value, digits)
    return f"{pct(value, digits)} [{pct(low, digits)}, {pct(high, digits)}]"


def with_interval(value: float, low: float, high: float, scale: float = 100.0, digits: int = 1) -> str:
    """A difference and its interval, by default in points: ``+2.5 [-0.5, +5.5]``."""
    return f"{signed(value, scale, digits)} [{signed(low, scale, digits)}, {signed(high, scale, digits)}]"


def diff_cell(value: float, interval: Sequence[float] | None) -> str:
    """A paired difference in points with its interval and `` *`` where the interval excludes 0."""
    if not interval:
        return signed(value)
    low, high = interval
    return with_interval(value, low, high) + ("" if low <= 0 <= high else " *")


def seed_interval(values: Sequence[float]) -> dict[str, Any]:
    """A figure over seeds: its mean, the 95% Student-t interval over seeds (None with one seed), the values."""
    from interplay.metrics import mean_interval

    iv = mean_interval(list(values), method="t")
    ci = [iv.low, iv.high] if len(values) > 1 and _finite(iv.low) and _finite(iv.high) else None
    return {"mean": iv.mean, "ci95_over_seeds": ci, "values": list(values)}


def seed_cell(figure: dict[str, Any]) -> str:
    """A ``seed_interval`` rate in percent, with its interval over seeds where there is one."""
    return pct_interval(figure["mean"], *(figure["ci95_over_seeds"] or ()))


def cell(text: Any) -> str:
    """Text that stays in its Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines (cells as they are: escape free text with ``cell``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
