"""How a configuration trains: the loop, its steps, resume state, segments on the clock and torchrun jobs."""
