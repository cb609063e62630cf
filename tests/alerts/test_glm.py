"""The detectors' numerics: Poisson IRLS, negative binomial quantiles and Student t."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alerts.glm import fit_poisson, nbinom_quantile, student_t_quantile, student_t_sf

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def test_student_t_tails_against_closed_forms() -> None:
    # df 1 is the Cauchy distribution: P(T > 1) = 1/2 - atan(1)/pi = 1/4.
    assert student_t_sf(1.0, 1) == pytest.approx(0.25)
    # df 2: P(T > t) = 1/2 - t / (2 sqrt(t^2 + 2)).
    t = math.sqrt(2.0)
    assert student_t_sf(t, 2) == pytest.approx(0.5 - t / (2 * math.sqrt(t * t + 2)))
    assert student_t_sf(0.0, 7) == pytest.approx(0.5)
    assert student_t_sf(-1.0, 1) == pytest.approx(0.75)


def test_student_t_quantiles_from_the_tables() -> None:
    assert student_t_quantile(0.975, 19) == pytest.approx(2.093, abs=1e-3)
    assert student_t_quantile(0.99, 4) == pytest.approx(3.747, abs=1e-3)
    assert student_t_quantile(0.95, 24) == pytest.approx(1.711, abs=1e-3)


def test_negative_binomial_quantiles() -> None:
    # Poisson(4): P(X <= 7) = 0.949, P(X <= 8) = 0.979.
    assert nbinom_quantile(0.95, 4.0, 1.0) == 8
    assert nbinom_quantile(0.95, 0.0, 3.0) == 0
    # Poisson(0.05): P(X = 0) = exp(-0.05) = 0.951 >= 0.95.
    assert nbinom_quantile(0.95, 0.05, 1.0) == 0
    # Overdispersion widens the bound: phi 3 (size 2, prob 1/3) at mean 4.
    assert nbinom_quantile(0.95, 4.0, 3.0) > nbinom_quantile(0.95, 4.0, 1.0)
    # Large means need no special casing (exp(-1000) underflows; logs do not).
    assert 1040 <= nbinom_quantile(0.95, 1000.0, 1.0) <= 1060


def test_intercept_only_fit_is_the_log_mean() -> None:
    y = np.array([3.0, 5.0, 4.0, 6.0, 2.0])
    fit = fit_poisson(y, np.arange(5.0), trend=False)
    assert fit is not None
    assert fit.predict(10.0) == pytest.approx(4.0)
    assert fit.hat_values().sum() == pytest.approx(1.0)  # trace of the hat matrix = p
    # Pearson chi2 = (1 + 1 + 0 + 4 + 4) / 4 = 2.5 over 4 df.
    assert fit.dispersion == pytest.approx(2.5 / 4)


def test_trend_fit_recovers_an_exact_exponential() -> None:
    y = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    fit = fit_poisson(y, np.arange(6.0), trend=True)
    assert fit is not None
    assert fit.slope == pytest.approx(math.log(2))
    assert fit.predict(6.0) == pytest.approx(64.0)
    assert fit.hat_values().sum() == pytest.approx(2.0)
    assert fit.slope_p_value() < 1e-3


def test_a_trend_on_zeros_then_one_spike_does_not_converge() -> None:
    y = np.array([0.0] * 10 + [12.0])
    assert fit_poisson(y, np.arange(11.0), trend=True) is None
    assert fit_poisson(y, np.arange(11.0), trend=False) is not None
