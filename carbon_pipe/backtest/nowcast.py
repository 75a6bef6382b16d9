"""What a policy should expect of the coming points, from what it may know when it decides. Pure numpy.

At decision row i a policy knows the actuals of ended points (< i) and, for the next `horizon` points, the latest
forecast issued by then (`believed[i, h]` for point i + h, NaN where none). `Nowcast` turns that into a better
guess in two steps; every statistic it uses is an expanding mean over pairs already known at row i:

1. Error correction. e_i = actual[i-1] - believed[i-1, 0] is the error, known at row i, of the forecast for the
   point that has just ended. Over the past, the error at each lead h is regressed on e (through the origin):
   beta_h. The guess becomes believed + beta_h * e_i. Real forecasts err persistently (beta near 1 at short
   leads); for independent noise the learned beta is near 0 and this step does nothing.
2. Smoothing towards the grid's daily shape. profile[p] is the mean actual at the same time of day over the 7
   days before (the most recent days that have ended). The deviation actual - profile is modelled as a slow
   AR(1) part plus a white part; their variances and the slow part's persistence come from the deviations'
   autocovariances at lags 0, 1 and 12 h. The corrected forecast is a noisy observation of the deviation, with
   the error variance measured per lead. A Kalman smoother, started from the last ended point's deviation
   (known exactly), gives the posterior mean of the deviation at every lead.

Beyond the forecast's horizon there is nothing to observe, so the guess relaxes from the last known deviation to
the daily profile. Rows without a day of history, or before 12 h of deviations exist, keep the corrected forecast
as it is (NaN where none); `fallback_rows` counts them.

The statistics run forward over the rows in blocks, carrying their running sums, so memory stays bounded by the
block (about BLOCK_CELLS rows x leads) whatever the trace's length; the smoother runs only for the rows asked for.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

PROFILE_DAYS = 7
SLOW_LAG_SECONDS = 12 * 3600.0
MIN_PAIRS = 12  # per lead, before the error correction is trusted
BLOCK_CELLS = 1 << 19


class Nowcast:
    """Expected intensities, `expected[i, h]` for point i + h as judged at row i, for the rows a policy asks about.

    `belief(rows, horizon)` gives the forecast as known at each row (NaN: not forecast).
    """

    def __init__(
        self, actual: np.ndarray, belief: Callable[[np.ndarray, int], np.ndarray], step: float, horizon: int
    ) -> None:
        self.actual, self.belief, self.horizon = actual, belief, horizon
        self.day = int(round(86400.0 / step))
        self.slow_lag = max(2, int(round(SLOW_LAG_SECONDS / step)))
        self.fallback_rows = 0

    def blocks(self, needed: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, expected[rows]) for the sorted rows `needed`, a block at a time in time order."""
        if len(needed) == 0:
            return
        per_block = max(1, BLOCK_CELLS // max(self.horizon, 1))
        errors, deviations = _Corrections(self), _Autocovariances(self)
        for first in range(0, int(needed[-1]) + 1, per_block):
            rows = np.arange(first, min(first + per_block, int(needed[-1]) + 1))
            corrected, noise = errors.advance(rows)
            moments = deviations.advance(rows)
            wanted = needed[np.searchsorted(needed, rows[0]) : np.searchsorted(needed, rows[-1], side="right")]
            if len(wanted):
                at = wanted - rows[0]
                yield wanted, self._expect(wanted, corrected[at], noise[at], tuple(m[at] for m in moments))

    def profile(self, points: np.ndarray) -> np.ndarray:
        """Mean actual at the same time of day over the 7 days before each point (those that exist); NaN before one
        day."""
        total, count = np.zeros(points.shape), np.zeros(points.shape)
        for days in range(1, PROFILE_DAYS + 1):
            source = points - days * self.day
            inside = source >= 0
            total += np.where(inside, self.actual[np.maximum(source, 0)], 0.0)
            count += inside
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def deviation(self, points: np.ndarray) -> np.ndarray:
        """actual - profile at each point; NaN before the first point."""
        inside = points >= 0
        clipped = np.maximum(points, 0)
        return np.where(inside, self.actual[clipped] - self.profile(clipped), np.nan)

    def _expect(self, rows: np.ndarray, corrected: np.ndarray, noise: np.ndarray, moments: tuple) -> np.ndarray:
        lag0, lag1, lag_slow, pairs_slow = moments
        leads = np.arange(-1, self.horizon)
        days_back = np.maximum(leads, 0) // self.day  # a profile point must have ended: reach back whole days
        source = rows[:, None] + leads - days_back * self.day
        shape = np.where(source >= 0, self.profile(np.clip(source, 0, len(self.actual) - 1)), np.nan)
        persistence, slow_var, white_var = _slow_and_white(lag0, lag1, lag_slow, self.slow_lag)
        start = np.nan_to_num(self.deviation(rows - 1))
        smooth = _smooth(corrected - shape[:, 1:], noise, start, persistence, slow_var, white_var)
        usable = ~np.isnan(shape[:, 0]) & (pairs_slow > self.day) & (lag0 > 0)
        self.fallback_rows += int(np.count_nonzero(~usable))
        return np.where(usable[:, None], shape[:, 1:] + smooth, corrected)


class _KnownByLead:
    """Sum and count of values[r, h] over the rows r whose target r + h has ended by row i (r <= i - 1 - h).

    Fed the rows block by block; keeps the running totals of the last horizon + 1 rows before the block.
    """

    def __init__(self, horizon: int) -> None:
        self.sums = np.zeros((horizon + 1, horizon))
        self.counts = np.zeros((horizon + 1, horizon))

    def known(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, horizon = values.shape
        present = ~np.isnan(values)
        sums = np.concatenate([self.sums, self.sums[-1] + np.cumsum(np.where(present, values, 0.0), axis=0)])
        counts = np.concatenate([self.counts, self.counts[-1] + np.cumsum(present, axis=0)])
        # sums[j] is the total through row first - horizon - 1 + j; row i at lead h needs row i - 1 - h
        through = np.arange(rows)[:, None] + horizon - np.arange(horizon)
        self.sums, self.counts = sums[-(horizon + 1) :], counts[-(horizon + 1) :]
        return sums[through, np.arange(horizon)], counts[through, np.arange(horizon)]


class _Corrections:
    """Step 1 for successive blocks of rows: the error-corrected forecast and its error variance per lead."""

    def __init__(self, nowcast: Nowcast) -> None:
        self.nowcast = nowcast
        self.pairs, self.scale, self.squared = (_KnownByLead(nowcast.horizon) for _ in range(3))
        self.last_error = np.nan  # lead-0 error of the row before the block

    def advance(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actual, horizon = self.nowcast.actual, self.nowcast.horizon
        believed = self.nowcast.belief(rows, horizon)
        targets = rows[:, None] + np.arange(horizon)
        truth = np.where(targets < len(actual), actual[np.minimum(targets, len(actual) - 1)], np.nan)
        error = truth - believed
        last_error = np.append(self.last_error, error[:-1, 0])
        self.last_error = error[-1, 0]
        pairs, count = self.pairs.known(last_error[:, None] * error)
        scale, _ = self.scale.known(np.where(np.isnan(error), np.nan, last_error[:, None] ** 2))
        beta = np.where(count >= MIN_PAIRS, pairs / np.maximum(scale, 1e-12), 0.0)
        corrected = believed + beta * np.nan_to_num(last_error)[:, None]
        squared, count = self.squared.known((truth - corrected) ** 2)
        noise = np.where(count >= self.nowcast.day, squared / np.maximum(count, 1), np.nan)
        return corrected, noise


class _Autocovariances:
    """Running means of deviation[p] * deviation[p - lag] over ended points p < i, at lags 0, 1 and 12 h."""

    def __init__(self, nowcast: Nowcast) -> None:
        self.nowcast = nowcast
        self.lags = (0, 1, nowcast.slow_lag)
        self.sums, self.counts = np.zeros(3), np.zeros(3)

    def advance(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """(lag0, lag1, lag_slow, pairs_slow) at each row."""
        reach = self.lags[-1]
        deviation = self.nowcast.deviation(np.arange(rows[0] - reach, rows[-1] + 1))
        means, pairs = [], None
        for k, lag in enumerate(self.lags):
            product = deviation[reach:] * deviation[reach - lag : len(deviation) - lag]
            present = ~np.isnan(product)
            sums = self.sums[k] + np.concatenate([[0.0], np.cumsum(np.where(present, product, 0.0))])
            counts = self.counts[k] + np.concatenate([[0], np.cumsum(present)])
            self.sums[k], self.counts[k] = sums[-1], counts[-1]
            means.append(sums[:-1] / np.maximum(counts[:-1], 1))
            pairs = counts[:-1]
        return (*means, pairs)


def _slow_and_white(lag0, lag1, lag_slow, slow_lag):
    """Method of moments for deviation = slow AR(1) + white: cov(l) = slow_var * persistence**l for l >= 1."""
    fits = (lag1 > 0) & (lag_slow > 0)  # otherwise nothing persists: all of the deviation is white
    ratio = np.divide(lag_slow, lag1, out=np.ones_like(lag1), where=fits)
    persistence = np.where(fits, np.clip(ratio ** (1 / (slow_lag - 1)), 0.5, 0.9999), 0.0)  # per step
    slow_var = np.where(fits, np.minimum(lag1 / np.maximum(persistence, 1e-12), lag0), 0.0)
    white_var = np.maximum(lag0 - slow_var, 1e-6 * np.maximum(lag0, 0))
    return persistence, slow_var, white_var


def _smooth(observed, noise, start, persistence, slow_var, white_var):
    """Posterior mean of slow + white at each lead, given the exact deviation at lead -1 and noisy observations.

    The slow part is a scalar Kalman filter and RTS smoother, seeing observation noise + white variance. Given the
    slow part, each white value depends only on its own observation, so its posterior mean is a closed form.
    Works lead by lead over all rows at once (arrays transposed so that each lead is contiguous).
    """
    seen = (~np.isnan(observed) & ~np.isnan(noise)).T
    observed, noise = np.where(seen, observed.T, 0.0), np.where(seen, noise.T, 1.0)
    horizon, rows = observed.shape
    total = slow_var + white_var
    mean = start * np.divide(slow_var, total, out=np.zeros(rows), where=total > 0)
    var = np.divide(slow_var * white_var, total, out=np.zeros(rows), where=total > 0)
    innovation = slow_var * (1 - persistence**2)
    filtered, filtered_var, predicted_var = (np.empty((horizon, rows)) for _ in range(3))
    for h in range(horizon):
        mean, var = persistence * mean, persistence**2 * var + innovation
        predicted_var[h] = var
        spread = var + noise[h] + white_var
        gain = np.divide(var, spread, out=np.zeros(rows), where=seen[h] & (spread > 0))
        mean = mean + gain * (observed[h] - mean)
        var = (1 - gain) * var
        filtered[h], filtered_var[h] = mean, var
    slow = filtered
    for h in range(horizon - 2, -1, -1):
        back = np.divide(
            persistence * filtered_var[h], predicted_var[h + 1], out=np.zeros(rows), where=predicted_var[h + 1] > 0
        )
        slow[h] += back * (slow[h + 1] - persistence * filtered[h])
    white_share = np.divide(
        white_var, white_var + noise, out=np.zeros_like(noise), where=seen & (white_var + noise > 0)
    )
    return (slow + white_share * (observed - slow)).T
