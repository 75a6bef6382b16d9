"""Carbon intensity as data: the series type, trace files, the horizon a run is charged with, and the sources."""
