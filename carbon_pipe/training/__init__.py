"""How a configuration trains: the loop, its model, resume state, pause-and-resume segments and torchrun jobs."""
