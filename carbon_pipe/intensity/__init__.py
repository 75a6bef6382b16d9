"""Where the intensities come from: the series type, trace files, the sources, their settings and the horizon."""
