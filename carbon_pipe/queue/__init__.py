"""The experiment queue: entries (DVC experiments), their joint plan, and running them locally or on SLURM."""
