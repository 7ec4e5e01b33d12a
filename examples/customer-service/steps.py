"""The customer-service pipeline's own step: register the bundled sentence-embedding model.

No step kind registers an embedding model, so the `embed` step of fermion.yaml is a `python`
step calling `register_minilm`. It is cached like any step: a second `fermion run` reuses the
version this registered, as long as this file is unchanged.
"""

from __future__ import annotations

from fermion.pipelines.types import StepContext, StepOutput
from fermion.registry.embedding import register_embedding


def register_minilm(context: StepContext, name: str = "minilm") -> StepOutput:
    """Register all-MiniLM-L6-v2 (bundled with `fermion[text]`, never downloaded) as `name`."""
    version = register_embedding(
        context.workspace.models,
        name,
        description="all-MiniLM-L6-v2 sentence embeddings, served on /v1/embeddings",
    )
    return StepOutput(
        refs={"model": version.ref},
        hashes={"model": version.content_hash},
        summary=f"{version.ref} (all-MiniLM-L6-v2, 384 dimensions)",
    )
