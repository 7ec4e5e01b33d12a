"""The `deploy` step: the Docker or Kubernetes files that serve the pipeline's model, written
as `fermion deploy` writes them (`fermion.serving.deploy.write_deployment`)."""

from __future__ import annotations

from fermion.pipelines.kinds_config import StepConfig, model_output
from fermion.pipelines.types import MODEL, StepContext, StepOutput

DEPLOY_KEYS = (
    "serve_as",
    "models",
    "out",
    "name",
    "port",
    "workers",
    "replicas",
    "image",
    "min_replicas",
    "max_replicas",
    "cpu_target",
    "cpu",
    "memory",
    "extras",
    "allow_local",
)


def run_deploy(ctx: StepContext) -> StepOutput:
    """Write the files serving the step's `model` (by the alias in `serve_as`, when given, so
    the server follows later promotions) and any `models` beside it, into `out` (default
    deploy/<name>, relative to the project). Files already there are rewritten: a pipeline
    re-deploys on every run; files it did not generate (a filled-in fermion.env) are kept."""
    from fermion.serving.deploy import derive_name, write_deployment

    config = StepConfig(ctx)
    version = ctx.workspace.models.get(ctx.ref(MODEL, MODEL))
    alias = config.text("serve_as")
    served = f"{version.name}@{alias}" if alias else version.ref
    refs = [served, *config.names("models")]
    name = config.text("name")
    out = config.path("out") or ctx.root / "deploy" / (name or derive_name(version.name))
    written = write_deployment(
        ctx.workspace,
        refs,
        target=config.required_text("target"),  # type: ignore[arg-type]  # checked by deploy
        out=out,
        name=name,
        port=config.integer("port", 8080),
        workers=config.integer("workers", 1),
        replicas=config.integer("replicas", 2),
        image=config.text("image"),
        min_replicas=config.integer("min_replicas"),
        max_replicas=config.integer("max_replicas"),
        cpu_target=config.integer("cpu_target", 70),
        cpu=config.text("cpu", "1"),
        memory=config.text("memory", "2Gi"),
        extras=config.names("extras"),
        allow_local=config.flag("allow_local"),
        force=True,
    )
    return model_output(version, f"{', '.join(refs)}: {len(written)} files in {out}")
