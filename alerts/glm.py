"""Small numerics for the detectors: a Poisson log-linear GLM by IRLS, quantiles, Student t."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# R's glm.control: at most 25 iterations, stop when the relative deviance change is < 1e-8.
MAX_ITERATIONS = 25
TOLERANCE = 1e-8
# R's log link: linkinv(eta) = pmax(exp(eta), .Machine$double.eps), so that fitted zeros
# (a trend fitted to zeros then counts) never divide by zero.
MU_FLOOR = sys.float_info.epsilon


@dataclass(frozen=True, slots=True)
class PoissonFit:
    """A fitted log(mu) = b0 + b1 (t - centre) (b1 = 0 without trend), with prior weights."""

    coefficients: FloatArray  # (b0,) or (b0, b1)
    centre: float  # t is centred for conditioning; predict() undoes it
    y: FloatArray
    mu: FloatArray
    weights: FloatArray
    design: FloatArray  # n x p
    cov_unscaled: FloatArray  # (X' W X)^-1, W = weights * mu

    @property
    def trend(self) -> bool:
        return self.coefficients.size == 2

    @property
    def slope(self) -> float:
        return float(self.coefficients[1]) if self.trend else 0.0

    @property
    def slope_variance_unscaled(self) -> float:
        return float(self.cov_unscaled[1, 1]) if self.trend else math.inf

    @property
    def residual_df(self) -> int:
        return self.y.size - self.coefficients.size

    @property
    def dispersion(self) -> float:
        """Pearson chi2 / (n - p), as R's summary.glm for quasi-Poisson (not floored)."""
        if self.residual_df <= 0:
            return 1.0
        pearson = float(np.sum(self.weights * (self.y - self.mu) ** 2 / self.mu))
        return pearson / self.residual_df

    def predict(self, t: float) -> float:
        eta = float(self.coefficients[0]) + self.slope * (t - self.centre)
        return math.exp(min(eta, 700.0))

    def slope_p_value(self) -> float:
        """Two-sided p-value of b1 (Student t on n - p df, unfloored dispersion); 1 if no trend."""
        if not self.trend or self.residual_df <= 0:
            return 1.0
        se = math.sqrt(max(self.dispersion, 1e-12) * self.slope_variance_unscaled)
        return 2.0 * student_t_sf(abs(self.slope) / se, self.residual_df)

    def hat_values(self) -> FloatArray:
        w = self.weights * self.mu
        quad = np.einsum("ij,jk,ik->i", self.design, self.cov_unscaled, self.design)
        return np.asarray(w * quad, dtype=np.float64)

    def anscombe_residuals(self, phi: float) -> FloatArray:
        """3/2 (y^2/3 mu^-1/6 - mu^1/2) / sqrt(phi (1 - h)): Farrington 1996, eq. for s_i."""
        raw = 1.5 * (self.y ** (2.0 / 3.0) * self.mu ** (-1.0 / 6.0) - np.sqrt(self.mu))
        leverage = np.clip(1.0 - self.hat_values(), 1e-12, None)
        return np.asarray(raw / np.sqrt(phi * leverage), dtype=np.float64)


def fit_poisson(
    y: FloatArray, t: FloatArray, *, trend: bool, weights: FloatArray | None = None
) -> PoissonFit | None:
    """Poisson log-linear regression by iteratively reweighted least squares, started as R's
    poisson family does (mu = y + 0.1). Returns None if it does not converge or diverges
    (e.g. a trend fitted to zeros followed by counts), so callers can refit without trend."""
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    centre = float(t.mean())
    columns = [np.ones_like(y)] + ([t - centre] if trend else [])
    design = np.column_stack(columns)
    if not trend:  # the intercept-only MLE in closed form: the weighted mean
        mean = float(np.sum(w * y) / np.sum(w))
        if mean <= 0.0:
            return None
        mu = np.full_like(y, mean)
        cov = np.array([[1.0 / float(np.sum(w * mu))]])
        return PoissonFit(np.array([math.log(mean)]), centre, y, mu, w, design, cov)
    mu = y + 0.1
    eta = np.log(mu)
    deviance_old = math.inf
    for _ in range(MAX_ITERATIONS):
        z = eta + (y - mu) / mu
        weight = w * mu
        xtw = design.T * weight
        try:
            coefficients = np.asarray(np.linalg.solve(xtw @ design, xtw @ z), dtype=np.float64)
        except np.linalg.LinAlgError:
            return None
        eta = design @ coefficients
        if not np.all(np.isfinite(eta)) or float(eta.max()) > 700.0:
            return None
        mu = np.maximum(np.exp(eta), MU_FLOOR)
        deviance = _deviance(y, mu, w)
        if abs(deviance - deviance_old) / (abs(deviance) + 0.1) < TOLERANCE:
            weight = w * mu
            xtw = design.T * weight
            try:
                cov = np.asarray(np.linalg.inv(xtw @ design), dtype=np.float64)
            except np.linalg.LinAlgError:
                return None
            return PoissonFit(coefficients, centre, y, mu, w, design, cov)
        deviance_old = deviance
    return None


def _deviance(y: FloatArray, mu: FloatArray, w: FloatArray) -> float:
    ratio = np.where(y > 0, y / mu, 1.0)
    return float(2.0 * np.sum(w * (np.where(y > 0, y * np.log(ratio), 0.0) - (y - mu))))


def nbinom_quantile(q: float, mean: float, phi: float) -> int:
    """Smallest k with P(Y <= k) >= q for Y negative binomial with the given mean and variance
    phi * mean (R's qnbinom(q, size = mean / (phi - 1), prob = 1 / phi)); Poisson if phi <= 1."""
    if mean <= 0.0:
        return 0
    target = q * (1.0 - 64.0 * sys.float_info.epsilon)  # R's fuzz against rounding
    if phi <= 1.0:
        log_p, log_ratio, size = -mean, math.log(mean), 0.0
    else:
        size = mean / (phi - 1.0)
        log_p, log_ratio = size * math.log(1.0 / phi), math.log(1.0 - 1.0 / phi)
    cdf, k = 0.0, 0
    limit = int(mean + 60.0 * math.sqrt(max(phi, 1.0) * mean) + 100.0 * max(phi, 1.0))
    while k < limit:
        cdf += math.exp(log_p)
        if cdf >= target:
            return k
        # P(k + 1) / P(k): mean / (k + 1) for Poisson, (k + size) / (k + 1) (1 - 1/phi) for NB.
        log_p += log_ratio - math.log(k + 1.0) + (math.log(k + size) if size else 0.0)
        k += 1
    return k


def student_t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with integer df, exactly, by the finite series of Abramowitz
    and Stegun 26.7.3-4 for A(t|df) = P(|T| < |t|)."""
    if df < 1:
        raise ValueError("df must be at least 1")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:
        total, term = 0.0, 1.0
        if df > 1:
            total = term = 1.0
            for j in range(1, (df - 3) // 2 + 1):
                term *= c2 * (2 * j) / (2 * j + 1)
                total += term
        central = 2.0 / math.pi * (theta + s * math.cos(theta) * total if df > 1 else theta)
    else:
        total = term = 1.0
        for j in range(1, (df - 2) // 2 + 1):
            term *= c2 * (2 * j - 1) / (2 * j)
            total += term
        central = s * total
    upper = 0.5 * (1.0 - central)
    return upper if t >= 0 else 1.0 - upper


@lru_cache(maxsize=256)
def student_t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = p, by bisection on student_t_sf (p in (0, 1))."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    low, high = -1e3, 1e3
    for _ in range(80):  # 2000 / 2^80: far below float resolution at any t that matters
        mid = 0.5 * (low + high)
        if 1.0 - student_t_sf(mid, df) < p:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)
