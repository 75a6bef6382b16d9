"""Your own training command as a run (`carbon-pipe run`): launched, paused and resumed on the plan, its energy kept.

`process.py` launches the command in a process group of its own, gives it a time budget, asks it to stop (SIGTERM, a
grace period, SIGKILL) and passes Ctrl-C and SIGTERM on; `reported.py` reads what the command reports in
$CARBON_PIPE_METRICS; `command_run.py` runs it for one segment of the run, measured and journalled on the pipeline
clock, `progress.py` keeping what the segments did; `outputs.py` accounts a run's segments into the same
metrics/<run>.json and energy_intervals.csv as `train`'s.
"""
