"""When the job runs: the pure planner, clocks, the wait for a window, the decision, and re-plans between chunks."""
