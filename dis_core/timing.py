"""Frame times as containers write them: the rate they were written at, one rule for extraction and features."""

from __future__ import annotations

import numpy as np

ROUNDING_S = 0.002  # frame periods within this of each other are one rate written with rounded times


def rate_of_periods(periods: np.ndarray) -> float | None:
    """Frames per second of these frame periods (None when none is positive): frames over the span of the
    periods within the rounding of the one nearest the median. Matroska and WebM keep whole milliseconds, so
    30 fps is 33 and 34 ms, whose median alone gave 30.303 (24 fps 23.81, 15 fps 14.93); a dropped frame's
    double period or a variable rate's outliers are not the rate either."""
    d = np.asarray(periods, dtype=float)
    d = d[d > 0]
    if not d.size:
        return None
    typical = d[np.argmin(np.abs(d - np.median(d)))]  # a period that occurs (an even count's median may lie between)
    near = d[np.abs(d - typical) <= ROUNDING_S]
    return float(near.size / near.sum())
