"""When the job runs: the pure planner, clocks, waiting for a window, the expected duration and the decision."""
