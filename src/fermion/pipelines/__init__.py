"""Pipelines: a project's lifecycle declared in `fermion.yaml`, run as a graph of cached steps."""
