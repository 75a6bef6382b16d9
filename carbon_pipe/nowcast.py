"""What a policy should expect of the coming points, from what it may know when it decides. Pure numpy.

At decision row i a policy knows the actuals of ended points (< i) and, for the next `horizon` points, the latest
forecast issued by then (`believed[i, h]` for point i + h, NaN where none). `expected_intensity` turns that into
a better guess in two steps; every statistic it uses is an expanding mean over pairs already known at row i:

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
the daily profile. Rows without a day of history keep the corrected forecast as it is (NaN where none).
"""

from __future__ import annotations

import numpy as np

PROFILE_DAYS = 7
SLOW_LAG_SECONDS = 12 * 3600.0
MIN_PAIRS = 12  # per lead, before the error correction is trusted


def expected_intensity(actual: np.ndarray, believed: np.ndarray, step: float) -> np.ndarray:
    """(points, horizon): the expected intensity of point i + h as judged at row i, for every row i.

    `actual` is the trace on its grid; `believed` the forecast as known at each row (NaN: not forecast).
    """
    points, horizon = believed.shape
    day = int(round(86400.0 / step))
    targets = np.arange(points)[:, None] + np.arange(horizon)
    truth = np.where(targets < points, actual[np.minimum(targets, points - 1)], np.nan)

    # 1. error correction
    error = truth - believed
    last_error = np.append(np.nan, error[:-1, 0])
    pairs, count = _known_by_lead(last_error[:, None] * error)
    scale, _ = _known_by_lead(np.where(np.isnan(error), np.nan, last_error[:, None] ** 2))
    beta = np.where(count >= MIN_PAIRS, pairs / np.maximum(scale, 1e-12), 0.0)
    corrected = believed + beta * np.nan_to_num(last_error)[:, None]
    squared, count = _known_by_lead((truth - corrected) ** 2)
    noise = np.where(count >= day, squared / np.maximum(count, 1), np.nan)

    # 2. smoothing towards the daily profile
    profile = _daily_profile(actual, day)
    deviation = actual - profile
    leads = np.arange(-1, horizon)
    days_back = np.maximum(leads, 0) // day  # a profile point must have ended: reach back whole days
    source = np.arange(points)[:, None] + leads - days_back * day
    shape = np.where(source >= 0, profile[np.clip(source, 0, points - 1)], np.nan)
    slow_lag = max(2, int(round(SLOW_LAG_SECONDS / step)))
    (lag0, _), (lag1, _), (lag_slow, pairs_slow) = (_autocovariance(deviation, lag) for lag in (0, 1, slow_lag))
    persistence, slow_var, white_var = _slow_and_white(lag0, lag1, lag_slow, slow_lag)
    start = np.nan_to_num(np.append(np.nan, deviation[:-1]))
    observed = corrected - shape[:, 1:]
    smooth = _smooth(observed, noise, start, persistence, slow_var, white_var)
    usable = ~np.isnan(shape[:, 0]) & (pairs_slow > day) & (lag0 > 0)
    return np.where(usable[:, None], shape[:, 1:] + smooth, corrected)


def _known_by_lead(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of values[r, h] over the rows r whose target r + h has ended by row i (r <= i - 1 - h)."""
    by_lead = values.T  # one contiguous row per lead
    present = ~np.isnan(by_lead)
    sums = np.cumsum(np.where(present, by_lead, 0.0), axis=1)
    counts = np.cumsum(present, axis=1)
    known_sums, known_counts = np.zeros_like(sums), np.zeros_like(counts)
    points = values.shape[0]
    for lead in range(values.shape[1]):  # lead h is known h + 1 rows later
        known_sums[lead, lead + 1 :] = sums[lead, : points - lead - 1]
        known_counts[lead, lead + 1 :] = counts[lead, : points - lead - 1]
    return known_sums.T, known_counts.T


def _daily_profile(actual: np.ndarray, day: int) -> np.ndarray:
    """profile[p]: mean of actual[p - day], ..., actual[p - 7 days] (those that exist); NaN before one day."""
    total = np.zeros(len(actual))
    count = np.zeros(len(actual))
    for days in range(1, PROFILE_DAYS + 1):
        shift = days * day
        if shift < len(actual):
            total[shift:] += actual[:-shift]
            count[shift:] += 1
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _autocovariance(deviation: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """At each row i: the mean of deviation[p] * deviation[p - lag] over ended points p < i, and the pair count."""
    product = np.full(len(deviation), np.nan)
    product[lag:] = deviation[lag:] * deviation[: len(deviation) - lag]
    present = ~np.isnan(product)
    sums = np.concatenate([[0.0], np.cumsum(np.where(present, product, 0.0))])[:-1]
    counts = np.concatenate([[0], np.cumsum(present)])[:-1]
    return sums / np.maximum(counts, 1), counts


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
        back = np.divide(persistence * filtered_var[h], predicted_var[h + 1], out=np.zeros(rows), where=predicted_var[h + 1] > 0)
        slow[h] += back * (slow[h + 1] - persistence * filtered[h])
    white_share = np.divide(white_var, white_var + noise, out=np.zeros_like(noise), where=seen & (white_var + noise > 0))
    return (slow + white_share * (observed - slow)).T
