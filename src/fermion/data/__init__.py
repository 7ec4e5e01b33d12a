"""Data management: ingest, schema, profile, cleaning, validation, splits.

Import what you need from the submodules (`fermion.data.clean`, ...); this package does not
import Polars on its own.
"""
