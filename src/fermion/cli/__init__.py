"""The `fermion` command line: a thin adapter over the Python API."""
