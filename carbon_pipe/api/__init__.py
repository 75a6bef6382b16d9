"""The Python API for code that is not a pipeline: meter a block, plan a window, wait for it (no torch needed).

`metering.py` holds `track` (a context manager and decorator), `windows.py` holds `plan` and `wait_for_window`; both
build their params in `settings.py`, from a params file or the schema's defaults. Their modules import only the
standard library at the top, so `from carbon_pipe import track` is instant; the work imports what it needs.
"""
