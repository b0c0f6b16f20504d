"""One module per native trace format; each defines ``FORMAT`` (see :mod:`teich.traces.protocol`)."""
