"""`python -m fermion`: the same as the `fermion` command."""

from fermion.cli import run

run()
