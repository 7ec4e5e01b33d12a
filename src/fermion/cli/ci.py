"""`fermion ci ...`: set up a CI service to run the project's pipeline on every change."""

from __future__ import annotations

from pathlib import Path

import typer

from fermion.cli.app import new_app
from fermion.cli.output import console

app = new_app("Run the project's pipeline in CI (fermion run --ci) on every change.")


@app.command("init")
def init(
    github: bool = typer.Option(
        False, "--github", help="Write a GitHub Actions workflow (the one CI written so far)."
    ),
    pipeline: str = typer.Option(
        None, "--pipeline", help="The pipeline CI runs (default: the file's first)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite a workflow already there."),
) -> None:
    """Write .github/workflows/fermion.yml beside fermion.yaml (here or above): on push and
    pull request, install the project, run `fermion run --ci`, keep its two reports."""
    from fermion.errors import ConflictError, InvalidInputError
    from fermion.pipelines.ci_workflow import GITHUB_WORKFLOW, github_workflow
    from fermion.pipelines.spec import find_project, load_project
    from fermion.pipelines.spec import pipeline as find_pipeline

    if not github:
        raise InvalidInputError("name the CI to set up: fermion ci init --github")
    path = find_project(Path.cwd())
    root = path.resolve().parent
    if pipeline is not None:
        find_pipeline(load_project(path), pipeline)  # a name CI would only fail on later
    target = root / GITHUB_WORKFLOW
    if target.exists() and not force:
        raise ConflictError(f"{target} exists: --force overwrites it")
    text = github_workflow(pipeline, editable_install=(root / "pyproject.toml").is_file())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    console().print(f"wrote {target}")
