"""Small statistics the loop and monitoring share: a proportion's confidence interval.

Wilson's score interval, not the normal approximation: it stays inside [0, 1]
and keeps its coverage at the counts this project meets (20 labelled texts, or
a rate near 0 or 1), where `p ± z·sqrt(p(1-p)/n)` collapses to a point.
"""

from __future__ import annotations

import math

from scipy.stats import norm


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided Wilson score interval of `successes` in `trials` at `confidence`; (0, 1) with no trials."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes ({successes}) must lie between 0 and trials ({trials})")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)
