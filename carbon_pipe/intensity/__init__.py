"""Where the intensities come from: the series type, trace files, the sources and the horizon."""
