"""The model registry: versions, aliases, signatures, the model format and its flavors."""
