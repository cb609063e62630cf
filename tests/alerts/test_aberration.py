"""The aberration detectors against hand-computed values and edge cases."""

from __future__ import annotations

import math

import pytest

from alerts.aberration import (
    MIN_SD,
    cusum,
    ears_c1,
    ears_c2,
    ears_c3,
    farrington_flexible,
    poisson_trend,
)

# A baseline with mean 2 and sample sd 1: deviations -1, 1, -1, 1, -1, 1, 0 give a sum of
# squares 6, divided by n - 1 = 6.
BASELINE = [1, 3, 1, 3, 1, 3, 2]
# Noisy steady weekly-like counts around 5 (a fixed Poisson(5) draw).
STEADY = [4, 6, 5, 3, 7, 5, 4, 6, 5, 8, 4, 5, 6, 3, 5, 7, 4, 5, 6, 5, 4, 6, 5, 7, 3, 5] * 8

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def test_c1_is_the_count_in_baseline_standard_deviations() -> None:
    # (6 - 2) / 1 = 4 > 3
    result = ears_c1([*BASELINE, 6])
    assert result.statistic == pytest.approx(4.0)
    assert result.expected == pytest.approx(2.0)
    assert result.observed == 6
    assert result.alarm


def test_c1_at_the_threshold_does_not_alarm() -> None:
    # (5 - 2) / 1 = 3, and the rule is C1 > 3
    result = ears_c1([*BASELINE, 5])
    assert result.statistic == pytest.approx(3.0)
    assert not result.alarm


def test_c2_skips_the_two_periods_before_the_current_one() -> None:
    # The 9s in the gap are not in the baseline: (6 - 2) / 1 = 4.
    result = ears_c2([*BASELINE, 9, 9, 6])
    assert result.statistic == pytest.approx(4.0)
    assert result.alarm
    assert not ears_c1([*BASELINE, 9, 9, 6]).alarm  # C1's baseline holds the 9s


def test_a_single_detection_after_zeros_does_not_alarm_but_two_do() -> None:
    # sd floor 0.5: (1 - 0) / 0.5 = 2 <= 3; (2 - 0) / 0.5 = 4 > 3.
    assert MIN_SD == 0.5
    one, two = ears_c2([0] * 9 + [1]), ears_c2([0] * 9 + [2])
    assert (one.statistic, one.alarm) == (pytest.approx(2.0), False)
    assert (two.statistic, two.alarm) == (pytest.approx(4.0), True)
    assert not ears_c1([0] * 7 + [1]).alarm


def test_c3_sums_the_excess_of_the_last_three_c2_values() -> None:
    # Every baseline is zeros (sd floor 0.5): C2 = 2, 2, 4 for counts 1, 1, 2, so
    # C3 = (2 - 1) + (2 - 1) + (4 - 1) = 5 > 2.
    result = ears_c3([0] * 9 + [1, 1, 2])
    assert result.statistic == pytest.approx(5.0)
    assert result.alarm


@pytest.mark.parametrize(
    ("tail", "expected", "alarm"),
    [
        ([1, 0, 0], 1.0, False),  # 1 + 0 + 0: one detection is one event
        ([0, 1, 1], 2.0, False),  # 0 + 1 + 1 = 2, and the rule is C3 > 2
        ([1, 1, 1], 3.0, True),  # three days running
    ],
)
def test_c3_on_single_detections_after_zeros(tail: list[int], expected: float, alarm: bool) -> None:
    result = ears_c3([0] * 9 + tail)
    assert result.statistic == pytest.approx(expected)
    assert result.alarm is alarm


def test_ears_needs_a_full_baseline() -> None:
    short = ears_c1(BASELINE)  # 7 periods: no current one after a 7-period baseline
    assert not short.alarm
    assert not short.enough_history
    assert "insufficient history" in short.detail
    assert not ears_c2([0] * 9).enough_history
    assert not ears_c3([0] * 11).enough_history
    assert ears_c3([0] * 12).enough_history


def test_cusum_accumulates_standardised_excess_over_the_run() -> None:
    # Reference [1, 3, 1, 3, 2]: mean 2, sd 1 (sum of squares 4 over n - 1 = 4).
    # Run [3, 2, 5]: z = 1, 0, 3; S = max(0, 0 + 1 - 0.5) = 0.5, then 0.5 + 0 - 0.5 = 0,
    # then 0 + 3 - 0.5 = 2.5.
    counts = [1, 3, 1, 3, 2, 3, 2, 5]
    low = cusum(counts, baseline=5, run=3, h=2.0)
    assert low.statistic == pytest.approx(2.5)
    assert low.alarm
    assert not cusum(counts, baseline=5, run=3).alarm  # default h = 4
    # A sustained shift of 2 sd: S = 1.5, 3.0, 4.5 > 4.
    assert cusum([1, 3, 1, 3, 2, 4, 4, 4], baseline=5, run=3).statistic == pytest.approx(4.5)


def test_cusum_lets_a_spike_go_once_it_leaves_the_run() -> None:
    spike_in_run = [0] * 28 + [20] + [0] * 13  # 40 - 0.5 = 39.5, then 13 days of -0.5
    assert cusum(spike_in_run).statistic == pytest.approx(33.0)
    assert cusum(spike_in_run).alarm
    spike_in_reference = [0] * 20 + [20] + [0] * 27  # the spike sits in the 28-day reference
    assert cusum(spike_in_reference).statistic == 0.0


def test_cusum_needs_baseline_plus_run_periods() -> None:
    assert not cusum([0] * 41).enough_history
    assert cusum([0] * 42).enough_history


@pytest.mark.parametrize("detector", [ears_c1, ears_c2, ears_c3, cusum])
def test_daily_detectors_stay_quiet_on_zeros_and_on_a_steady_noisy_series(detector: object) -> None:
    assert callable(detector)
    assert not detector([0] * 120).alarm
    # 200 checks along a steady Poisson(5) series: EARS and CUSUM have known false-alarm
    # rates of a few percent, so allow some, but not a trend of them.
    alarms = sum(detector(STEADY[: end + 1]).alarm for end in range(50, 200))
    assert alarms <= 15


def _weekly(windows: list[list[int]], current: int, recent: list[int] | None = None) -> list[int]:
    """A 160-week series: windows[y - 1] around the same week y years ago, then the current."""
    series = [0] * 160
    now = 159
    for year, window in enumerate(windows, start=1):
        for offset, value in zip(range(-3, 4), window, strict=True):
            series[now - 52 * year + offset] = value
    if recent:
        series[now - len(recent) : now] = recent
    series[now] = current
    return series


def test_farrington_bound_on_a_flat_overdispersed_reference() -> None:
    # Reference [4, 8, 0, 4, 0, 8, 4] in each of 3 years: mean 4; the weeks are symmetric about
    # the reference week, so the trend's MLE is 0 and the intercept-only fit gives mu0 = 4.
    # Pearson chi2 = 3 * 4 * (8 - 4)^2 / 4 = 48, phi = 48 / (21 - 1) = 2.4; Anscombe residuals
    # (at most 1.5 * (8^(2/3) 4^(-1/6) - 2) / sqrt(2.4 * 20/21) = 1.17) stay below 2.58, so no
    # reweighting. Negative binomial with mean 4, variance 9.6: size 4 / 1.4, prob 1 / 2.4.
    size, prob = 4 / 1.4, 1 / 2.4

    def cdf(k: int) -> float:
        return sum(
            math.exp(
                math.lgamma(j + size) - math.lgamma(size) - math.lgamma(j + 1)
                + size * math.log(prob) + j * math.log(1 - prob)
            )
            for j in range(k + 1)
        )  # fmt: skip

    assert cdf(9) < 0.95 <= cdf(10)  # 0.941, 0.960: the 95% bound is 10
    window = [4, 8, 0, 4, 0, 8, 4]
    at_bound = farrington_flexible(_weekly([window] * 3, 10))
    assert at_bound.expected == pytest.approx(4.0)
    assert at_bound.threshold == 10
    assert "phi 2.40" in at_bound.detail
    assert "no trend" in at_bound.detail
    assert not at_bound.alarm  # 10 is not above 10
    assert farrington_flexible(_weekly([window] * 3, 11)).alarm


def test_farrington_poisson_bound_when_there_is_no_overdispersion() -> None:
    # A constant reference of 4s: Pearson chi2 = 0, phi = max(1, 0) = 1, so the bound is the
    # Poisson(4) 95% quantile: P(X <= 7) = 0.949 < 0.95 <= P(X <= 8) = 0.979, so 8.
    poisson = [math.exp(-4) * 4**k / math.factorial(k) for k in range(9)]
    assert sum(poisson[:8]) < 0.95 <= sum(poisson)
    result = farrington_flexible(_weekly([[4] * 7] * 3, 9))
    assert result.threshold == 8
    assert result.alarm


def test_farrington_needs_a_minimum_count_in_the_last_four_weeks() -> None:
    # Nothing ever before: expected 0, bound 0, but 1 + 0 + 0 + 1 = 2 < 5 detections.
    quiet = farrington_flexible(_weekly([[0] * 7] * 3, 1, recent=[0, 0, 1]))
    assert (quiet.expected, quiet.threshold, quiet.alarm) == (0.0, 0.0, False)
    loud = farrington_flexible(_weekly([[0] * 7] * 3, 2, recent=[1, 1, 1]))  # 5 in 4 weeks
    assert loud.alarm


def test_farrington_downweights_a_past_outbreak_in_the_reference() -> None:
    # One reference week had 40: unweighted, mu0 would be the mean (20 * 3 + 40) / 21 = 4.76
    # with a large phi; its Anscombe residual is far above 2.58, so it is downweighted and mu0
    # falls towards the other weeks' 3, with a lower bound.
    outbreak = _weekly([[3, 3, 3, 40, 3, 3, 3], [3] * 7, [3] * 7], 10)
    weighted = farrington_flexible(outbreak)
    unweighted = farrington_flexible(outbreak, reweight_threshold=math.inf)
    assert unweighted.expected == pytest.approx(100 / 21)
    assert 3.0 <= weighted.expected < 3.5
    assert weighted.threshold < unweighted.threshold
    assert weighted.alarm
    assert not unweighted.alarm


def test_farrington_keeps_a_significant_trend_only_within_the_data() -> None:
    # 16 -> 8 -> 4 over the last three years: halving each year, significant, and predicting
    # about 2 now, within the data: kept. Poisson(2): P(X <= 4) = 0.947 < 0.95, so the bound is 5.
    falling = farrington_flexible(_weekly([[4] * 7, [8] * 7, [16] * 7], 6))
    assert "with trend" in falling.detail
    assert falling.expected == pytest.approx(2.0, rel=0.01)
    assert falling.threshold == 5
    assert falling.alarm
    # 4 -> 8 -> 16 would predict about 32 > 16, beyond the data: dropped, mu0 = the mean 28 / 3.
    rising = farrington_flexible(_weekly([[16] * 7, [8] * 7, [4] * 7], 20))
    assert "no trend" in rising.detail
    assert rising.expected == pytest.approx(28 / 3)


def test_farrington_needs_three_years_and_a_window() -> None:
    short = farrington_flexible([5] * 159)  # 52 * 3 + 3 + 1 = 160
    assert (short.alarm, short.enough_history) == (False, False)
    assert "insufficient history" in short.detail
    assert farrington_flexible([5] * 160).enough_history


def test_farrington_stays_quiet_on_zeros_and_on_a_steady_series() -> None:
    assert not farrington_flexible([0] * 170).alarm
    alarms = sum(farrington_flexible(STEADY[: end + 1]).alarm for end in range(159, 208))
    assert alarms <= 3


def test_poisson_trend_t_value_on_exact_doubling() -> None:
    # y = 1, 2, 4, 8, 16, 32 fits exactly: b = ln 2, Pearson chi2 = 0, phi = 1. With W = mu and
    # t centred at 2.5: sum mu = 63, sum mu (t - c) = 100.5, sum mu (t - c)^2 = 249.75, so
    # var(b) = 63 / (63 * 249.75 - 100.5^2) = 63 / 5634 and t = ln 2 / sqrt(63 / 5634) = 6.555,
    # against the one-sided 1% Student t on 4 df, 3.747.
    result = poisson_trend([1, 2, 4, 8, 16, 32], window=6)
    assert result.statistic == pytest.approx(math.log(2) / math.sqrt(63 / 5634), rel=1e-6)
    assert result.threshold == pytest.approx(3.747, abs=1e-3)
    assert result.alarm
    assert "+100.0% a period" in result.detail


def test_poisson_trend_quiet_on_steady_sparse_and_short_series() -> None:
    assert not poisson_trend([5] * 26).alarm
    assert poisson_trend([5] * 26).statistic == pytest.approx(0.0, abs=1e-6)
    assert not poisson_trend(STEADY[:26]).alarm
    sparse = poisson_trend([0] * 23 + [3, 4, 5])  # 12 detections, but on 3 weeks only: fits
    assert sparse.enough_history
    assert not poisson_trend([0] * 24 + [6, 6]).alarm  # 2 active weeks: no trend test
    assert not poisson_trend([5] * 25).enough_history


def test_a_spike_alarms_every_daily_detector() -> None:
    counts = [0] * 119 + [20]
    assert all(d(counts).alarm for d in (ears_c1, ears_c2, ears_c3, cusum))


def test_counts_must_be_non_negative() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ears_c1([1] * 7 + [-1])
