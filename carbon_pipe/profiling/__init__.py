"""Energy per training sample of configurations, measured paired: counters, bursts, and the statistics of a ratio."""
