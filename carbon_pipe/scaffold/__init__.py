"""A project of your own: what `carbon-pipe init` writes, and the view of its DVC experiments.

`stages.py` holds the dvc.yaml of each kind of project, `project.py` the params file, the notes and the writing,
`experiments.py` the `carbon-pipe experiments` table read from `dvc exp show --json`. carbon-pipe is an installed
tool in such a project, not part of it: no stage depends on carbon-pipe's code. (No stage of this repository's own
pipeline imports this package either, so editing it reruns nothing.)
"""
