"""`fermion ci ...`: set up a CI service to run the project's pipeline on every change."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

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
    """Write .github/workflows/fermion.yml at the root of the git repository that holds
    fermion.yaml (here or above; beside it outside a repository): on push and pull request,
    install the project, run `fermion run --ci` in its folder, keep its two reports."""
    from fermion.errors import ConflictError, InvalidInputError
    from fermion.pipelines.ci_workflow import GITHUB_WORKFLOW, github_workflow, repository_root
    from fermion.pipelines.spec import find_project, load_project
    from fermion.pipelines.spec import pipeline as find_pipeline

    if not github:
        raise InvalidInputError("name the CI to set up: fermion ci init --github")
    path = find_project(Path.cwd())
    root = path.resolve().parent
    if pipeline is not None:
        find_pipeline(load_project(path), pipeline)  # a name CI would only fail on later
    repository = repository_root(root) or root
    target = repository / GITHUB_WORKFLOW
    if target.exists() and not force:
        raise ConflictError(f"{target} exists: --force overwrites it")
    text = github_workflow(
        pipeline,
        editable_install=(root / "pyproject.toml").is_file(),
        folder=PurePosixPath(root.relative_to(repository).as_posix()),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    console().print(f"wrote {target}")
