"""A project of your own: what `carbon-pipe init` writes (dvc.yaml, a short params.yaml, CARBON_PIPE.md).

`stages.py` holds the dvc.yaml of each kind of project, `project.py` the params file, the notes and the writing.
carbon-pipe is an installed tool in such a project, not part of it: no stage depends on carbon-pipe's code.
"""
