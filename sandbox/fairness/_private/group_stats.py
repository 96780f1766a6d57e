"""Per-facet statistics of the audit: each rate's point values, standard errors and bootstrap resamples.

:func:`facet_draws` turns a facet's counts ``(G, 4)`` and their resamples ``(B, G, 4)`` into one
:class:`~.simultaneous.RateDraws` per rate; :func:`marginal_intervals` gives each group's own interval for the
``by_group`` table (what one group's rate alone can claim, not simultaneous):

* exact counts: Clopper–Pearson at ``1 - alpha``, exact at every group size;
* DP counts: the bootstrap-t quantile of the group's own studentised deviation (the resamples carry fresh noise)
  sets the critical value, and :func:`~.simultaneous.half_widths` builds the interval from it, so a group of 30
  gets the exact binomial spread plus the noise.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .intervals import clopper_pearson, noise_sd, rate_parts, rate_se, rate_se_at
from .metrics import group_rates
from .simultaneous import RateDraws, half_widths, order_quantile

__all__ = ["facet_draws", "marginal_intervals"]


def _noise_sd(counts: np.ndarray, rate: str, noise_scale: float) -> np.ndarray:
    a, c, ka, kc = rate_parts(counts, rate)
    return noise_sd((a + 1.0) / (a + c + 2.0), a + c, ka, kc, noise_scale)


def _rate_se_parts(a: np.ndarray, c: np.ndarray, ka: int, kc: int, noise_scale: float) -> np.ndarray:
    return rate_se_at((a + 1.0) / (a + c + 2.0), a + c, ka, kc, noise_scale)


def _rate(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.divide(a, n, out=np.full(np.shape(a), np.nan), where=n > 0)


def facet_draws(
    counts: np.ndarray,
    boot: np.ndarray,
    usable: np.ndarray,
    noise_scale: float,
    rates: Iterable[str],
) -> dict[str, RateDraws]:
    """One :class:`RateDraws` per rate for a facet with counts ``(..., G, 4)`` and resamples ``(..., B, G, 4)``."""
    total, total_boot = counts.sum(axis=-2), boot.sum(axis=-2)
    out = {}
    for rate in rates:
        a, c, ka, kc = rate_parts(counts, rate)
        ab, cb, _, _ = rate_parts(boot, rate)  # the resamples' sums, once per rate
        ta, tc, _, _ = rate_parts(total, rate)
        tab, tcb, _, _ = rate_parts(total_boot, rate)
        p = _rate(a, a + c)
        out[rate] = RateDraws(
            a=a,
            n=a + c,
            p=p,
            s=_rate_se_parts(a, c, ka, kc, noise_scale),
            noise_sd=_noise_sd(counts, rate, noise_scale),
            pb=_rate(ab, ab + cb),
            sb=_rate_se_parts(ab, cb, ka, kc, noise_scale),
            usable=usable & ~np.isnan(p),
            total_a=ta,
            total_n=ta + tc,
            total_noise_sd=_noise_sd(total, rate, noise_scale),
            total_s=_rate_se_parts(ta, tc, ka, kc, noise_scale),
            total_b=_rate(tab, tab + tcb),
            total_sb=_rate_se_parts(tab, tcb, ka, kc, noise_scale),
        )
    return out


def marginal_intervals(
    counts: np.ndarray, boot: np.ndarray, rate: str, noise_scale: float, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each group's own ``1 - alpha`` interval for ``rate`` (NaN where the rate is undefined)."""
    a, c, _, _ = rate_parts(counts, rate)
    n = a + c
    if noise_scale <= 0:
        return clopper_pearson(a, n, alpha)
    p = np.divide(a, n, out=np.full(a.shape, np.nan), where=n > 0)
    t = np.abs(group_rates(boot)[rate] - p[..., None, :]) / rate_se(boot, rate, noise_scale)
    lo, hi = half_widths(a, n, _noise_sd(counts, rate, noise_scale), order_quantile(t, alpha, axis=-2))
    return np.clip(p - lo, 0.0, 1.0), np.clip(p + hi, 0.0, 1.0)
