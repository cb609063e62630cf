"""Aberration detectors for count series: EARS C1/C2/C3, CUSUM, Farrington flexible, trend."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerts.glm import PoissonFit, fit_poisson, nbinom_quantile, student_t_quantile, student_t_sf

FloatArray = npt.NDArray[np.float64]

# Standard deviation floor for EARS and CUSUM. The surveillance package's earsC defaults to
# minSigma = 0, which divides by zero on a flat baseline (the usual case for a new substance).
# 0.5 is the standard deviation of a Poisson count with mean 0.25: after an all-zero baseline a
# single detection scores (1 - 0) / 0.5 = 2 (no alarm at 3; C3 gets 2 - 1 = 1, no alarm at 2),
# two detections on one day score 4 (alarm). A floor of 0.2 would make any lone detection alarm.
MIN_SD = 0.5
# A statistic must exceed its threshold by more than rounding error: sums of standardised
# counts that equal the threshold exactly in arithmetic can land a hair above it in floats.
EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Aberration:
    """One detector's verdict on the last period of a series.

    alarm is statistic > threshold (Farrington adds its minimum-count rule). expected is the
    count the detector expected for the last period and observed the count seen there.
    enough_history is False when the series was too short to test (then alarm is False).
    """

    method: str
    statistic: float
    threshold: float
    alarm: bool
    expected: float
    observed: int
    detail: str
    enough_history: bool = True


def _as_counts(counts: Sequence[int]) -> FloatArray:
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or (values.size and float(values.min()) < 0):
        raise ValueError("counts must be a flat sequence of non-negative integers")
    return values


def _too_short(method: str, threshold: float, values: FloatArray, needed: int) -> Aberration:
    observed = int(values[-1]) if values.size else 0
    detail = f"insufficient history: needs {needed} periods, has {values.size}"
    return Aberration(method, 0.0, threshold, False, 0.0, observed, detail, enough_history=False)


def _mean_sd(window: FloatArray, min_sd: float) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1, as R's sd), the sd floored at min_sd."""
    sd = float(window.std(ddof=1)) if window.size > 1 else 0.0
    return float(window.mean()), max(sd, min_sd)


def _c2_at(values: FloatArray, end: int, baseline: int, gap: int, min_sd: float) -> float:
    """(y_t - mean) / sd with the baseline y_{t-gap-baseline} .. y_{t-gap-1}, t = end - 1."""
    start = end - 1 - gap - baseline
    mean, sd = _mean_sd(values[start : start + baseline], min_sd)
    return (float(values[end - 1]) - mean) / sd


def _ears(
    method: str, counts: Sequence[int], baseline: int, gap: int, threshold: float, min_sd: float
) -> Aberration:
    values = _as_counts(counts)
    needed = baseline + gap + 1
    if values.size < needed:
        return _too_short(method, threshold, values, needed)
    start = values.size - needed
    mean, sd = _mean_sd(values[start : start + baseline], min_sd)
    observed = int(values[-1])
    statistic = (observed - mean) / sd
    detail = (
        f"{observed} against mean {mean:.2f}, sd {sd:.2f} of {baseline} periods"
        + (f" ending {gap} before" if gap else "")
        + f": ({observed} - {mean:.2f}) / {sd:.2f} = {statistic:.2f}"
    )
    return Aberration(
        method, statistic, threshold, statistic > threshold + EPS, mean, observed, detail
    )


def ears_c1(
    counts: Sequence[int], *, baseline: int = 7, threshold: float = 3.0, min_sd: float = MIN_SD
) -> Aberration:
    """EARS C1: C1_t = (y_t - mean) / sd over the `baseline` periods just before t; alarm when
    C1_t > threshold. CDC EARS (Hutwagner et al., J Urban Health 2003), surveillance::earsC:
    baseline 7, threshold 3 (~ z for alpha 0.001). sd floored at min_sd."""
    return _ears("EARS C1", counts, baseline, 0, threshold, min_sd)


def ears_c2(
    counts: Sequence[int],
    *,
    baseline: int = 7,
    gap: int = 2,
    threshold: float = 3.0,
    min_sd: float = MIN_SD,
) -> Aberration:
    """EARS C2: as C1 with the baseline ending `gap` periods before t (t-9 .. t-3 by default),
    so that the first days of an outbreak do not raise their own baseline. Alarm C2_t > 3."""
    return _ears("EARS C2", counts, baseline, gap, threshold, min_sd)


def ears_c3(
    counts: Sequence[int],
    *,
    baseline: int = 7,
    gap: int = 2,
    threshold: float = 2.0,
    min_sd: float = MIN_SD,
) -> Aberration:
    """EARS C3: C3_t = sum over i = t-2, t-1, t of max(0, C2_i - 1), alarm when C3_t > 2.

    The EARS definition (Hutwagner 2003; Fricker et al., Stat Med 2008): the positive parts of
    the C2 statistics minus one standard deviation, over the current and two previous periods.
    Each C2_i uses its own baseline, so the series needs baseline + gap + 3 periods.
    """
    method = "EARS C3"
    values = _as_counts(counts)
    needed = baseline + gap + 3
    if values.size < needed:
        return _too_short(method, threshold, values, needed)
    n = values.size
    parts = [
        max(0.0, _c2_at(values, end, baseline, gap, min_sd) - 1.0) for end in (n - 2, n - 1, n)
    ]
    statistic = sum(parts)
    start = n - 1 - gap - baseline
    mean, _ = _mean_sd(values[start : start + baseline], min_sd)
    observed = int(values[-1])
    detail = "C2 - 1 over the last 3 periods: " + " + ".join(f"{p:.2f}" for p in parts)
    detail += f" = {statistic:.2f}"
    return Aberration(
        method, statistic, threshold, statistic > threshold + EPS, mean, observed, detail
    )


def cusum(
    counts: Sequence[int],
    *,
    baseline: int = 28,
    k: float = 0.5,
    h: float = 4.0,
    run: int = 14,
    min_sd: float = MIN_SD,
) -> Aberration:
    """One-sided upper tabular CUSUM over the last `run` periods, on counts standardised by the
    mean and sd (floored at min_sd) of the `baseline` periods before them:
    z_i = (y_i - mean) / sd, S_i = max(0, S_{i-1} + z_i - k), S_0 = 0; alarm when S_t > h.

    k = 0.5 targets a shift of one standard deviation; h = 4 gives an in-control average run
    length of about 168 periods for normal data (Montgomery, Introduction to Statistical
    Quality Control, ch. 9). A fixed baseline before the run (as surveillance::algo.cusum
    estimates the in-control mean from the data before its range) lets a single spike leave
    the statistic after `run` periods instead of holding it up for months.
    """
    method = "CUSUM"
    values = _as_counts(counts)
    needed = baseline + run
    if values.size < needed:
        return _too_short(method, h, values, needed)
    reference = values[values.size - needed : values.size - run]
    mean, sd = _mean_sd(reference, min_sd)
    s = 0.0
    for y in values[values.size - run :]:
        s = max(0.0, s + (float(y) - mean) / sd - k)
    observed = int(values[-1])
    detail = (
        f"S = {s:.2f} over the last {run} periods against mean {mean:.2f}, sd {sd:.2f} "
        f"of the {baseline} before (k {k}, h {h})"
    )
    return Aberration(method, s, h, s > h + EPS, mean, observed, detail)


def farrington_flexible(
    counts: Sequence[int],
    *,
    period: int = 52,
    years_back: int = 3,
    window: int = 3,
    min_count: int = 5,
    recent: int = 4,
    alpha: float = 0.05,
    reweight_threshold: float = 2.58,
) -> Aberration:
    """Count-regression detector after the improved Farrington method (Noufaily et al., Stat
    Med 2013; surveillance::farringtonFlexible), for weekly series (period = 52).

    Reference values: the same period +/- `window` in each of the past `years_back` years
    (3 x 7 = 21 weeks by default). A quasi-Poisson GLM log(mu) = a + b t is fitted by IRLS,
    downweighting reference values whose Anscombe residual exceeds 2.58 (Noufaily), with
    phi = max(1, Pearson chi2 / (n - p)). The trend is kept only if it is significant at 5%
    (Student t on n - p df), years_back >= 3 and the prediction does not exceed the largest
    reference value (Farrington et al., JRSS A 1996); otherwise intercept only. threshold is the
    (1 - alpha) quantile of a negative binomial with mean mu0 and variance phi * mu0 (Poisson
    when phi = 1): Noufaily's plug-in bound. alarm: observed > threshold and at least
    `min_count` detections in the last `recent` periods (current included, as surveillance).
    statistic is the observed count. All-zero reference values give expected 0 and threshold 0.
    """
    method = "Farrington flexible"
    values = _as_counts(counts)
    needed = period * years_back + window + 1
    if values.size < needed:
        return _too_short(method, 0.0, values, needed)
    now = values.size - 1
    index = np.array(
        [
            now - period * year + d
            for year in range(1, years_back + 1)
            for d in range(-window, window + 1)
        ]
    )
    y = values[index]
    observed = int(values[-1])
    recent_total = int(values[-recent:].sum())
    enough = recent_total >= min_count
    gate = f"{recent_total} in the last {recent} periods (needs {min_count})"
    if float(y.sum()) == 0.0:
        detail = f"{observed} against no detections in {y.size} reference periods; {gate}"
        return Aberration(
            method, float(observed), 0.0, observed > 0 and enough, 0.0, observed, detail
        )
    t = index.astype(np.float64)
    fit, phi, trend = _farrington_fit(y, t, float(now), years_back, reweight_threshold)
    mu0 = fit.predict(float(now))
    upper = float(nbinom_quantile(1.0 - alpha, mu0, phi))
    alarm = observed > upper and enough
    detail = (
        f"{observed} against expected {mu0:.2f} from {y.size} reference periods "
        f"({'with' if trend else 'no'} trend, phi {phi:.2f}); upper bound {upper:.0f} "
        f"(negative binomial {1 - alpha:.0%} quantile); {gate}"
    )
    return Aberration(method, float(observed), upper, alarm, mu0, observed, detail)


def _farrington_fit(
    y: FloatArray, t: FloatArray, now: float, years_back: int, reweight_threshold: float
) -> tuple[PoissonFit, float, bool]:
    """The reweighted fit, its phi and whether the trend was kept (see farrington_flexible)."""
    with_trend = _reweighted(y, t, True, reweight_threshold)
    if with_trend is not None:
        fit, phi = with_trend
        significant = fit.slope_p_value() < 0.05
        if years_back >= 3 and significant and fit.predict(now) <= float(y.max()):
            return fit, phi, True
    flat = _reweighted(y, t, False, reweight_threshold)
    if flat is None:  # not expected: the intercept-only MLE is log(mean) when sum(y) > 0
        raise ArithmeticError("intercept-only Poisson fit did not converge")
    return flat[0], flat[1], False


def _reweighted(
    y: FloatArray, t: FloatArray, trend: bool, threshold: float
) -> tuple[PoissonFit, float] | None:
    """Fit, then refit with Noufaily's weights: gamma * s_i^-2 for Anscombe residuals s_i above
    threshold, gamma otherwise, gamma making the weights sum to n."""
    fit = fit_poisson(y, t, trend=trend)
    if fit is None:
        return None
    phi = max(1.0, fit.dispersion)
    residuals = fit.anscombe_residuals(phi)
    raw = np.where(residuals > threshold, np.maximum(residuals, threshold) ** -2.0, 1.0)
    weights = raw * (y.size / float(raw.sum()))
    refit = fit_poisson(y, t, trend=trend, weights=weights)
    if refit is None:
        return None
    return refit, max(1.0, refit.dispersion)


def poisson_trend(
    counts: Sequence[int], *, window: int = 26, alpha: float = 0.01, min_count: int = 10
) -> Aberration:
    """Sustained growth over the last `window` periods: a quasi-Poisson log-linear regression
    log(mu_t) = a + b t, alarm when the one-sided Student t test of b > 0 is significant at
    alpha (t on window - 2 df, phi = max(1, Pearson chi2 / df)), with at least `min_count`
    detections in the window on at least 3 periods.

    Complements Farrington, which needs three years of history, and the EARS/CUSUM detectors,
    whose short moving baselines absorb slow growth. statistic is the t value of b; expected is
    the mean of the window and the detail gives the growth per period.
    """
    method = "Poisson trend"
    values = _as_counts(counts)
    if values.size < window:
        return _too_short(method, 0.0, values, window)
    y = values[-window:]
    observed = int(y[-1])
    mean = float(y.mean())
    total, active = int(y.sum()), int(np.count_nonzero(y))
    critical = student_t_quantile(1.0 - alpha, window - 2)
    if total < min_count or active < 3:
        detail = f"{total} detections on {active} of {window} periods (needs {min_count} on 3)"
        return Aberration(method, 0.0, critical, False, mean, observed, detail)
    fit = fit_poisson(y, np.arange(window, dtype=np.float64), trend=True)
    if fit is None:
        detail = f"no converged fit over {window} periods"
        return Aberration(method, 0.0, critical, False, mean, observed, detail)
    phi = max(1.0, fit.dispersion)
    t_value = fit.slope / math.sqrt(phi * fit.slope_variance_unscaled)
    growth = math.expm1(fit.slope)
    detail = (
        f"{growth:+.1%} a period over the last {window} (phi {phi:.2f}): "
        f"t = {t_value:.2f} against {critical:.2f} (one-sided {alpha:g}, "
        f"p = {student_t_sf(t_value, window - 2):.3g})"
    )
    return Aberration(method, t_value, critical, t_value > critical + EPS, mean, observed, detail)
