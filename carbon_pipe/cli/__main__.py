"""`python -m carbon_pipe.cli` (and torchrun's `-m carbon_pipe.cli`) runs the command."""

from . import app

app()
