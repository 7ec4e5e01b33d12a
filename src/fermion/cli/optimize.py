"""`fermion optimize`: ONNX export, quantization and pruning with a measured report and a gate."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from fermion.cli.output import console, print_json


def optimize(
    model: str = typer.Argument(..., help="The model to optimize: NAME, NAME:VERSION, NAME@ALIAS."),
    quantize: str = typer.Option(
        "auto",
        "--quantize",
        "-q",
        help="dynamic (int8 weights), static (int8, calibrated on training rows), fp16, none "
        "(ONNX float32 only), or auto (int8 for networks, none for trees and linear models).",
    ),
    prune: float = typer.Option(
        None, "--prune", help="Prune this fraction of a torch_mlp network first, e.g. 0.3."
    ),
    prune_mode: str = typer.Option(
        "structured",
        "--prune-mode",
        help="structured (remove hidden units: smaller and faster) or unstructured (zero "
        "weights: smaller once compressed, not faster).",
    ),
    fine_tune: int = typer.Option(
        0, "--fine-tune", help="Epochs of fine-tuning after pruning (0: none)."
    ),
    max_drop: float = typer.Option(
        0.01, "--max-drop", help="Largest metric drop a variant may have and be registered."
    ),
    metric: str = typer.Option(
        None, "--metric", help="Metric to gate on (default per task: roc_auc, f1_macro, rmse)."
    ),
    alias: str = typer.Option(
        None, "--alias", help="Point this alias at the fastest registered variant."
    ),
    auto: bool = typer.Option(
        False, "--auto", help="Try every technique that suits the model's family."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset of the exported graph."),
    data: str = typer.Option(
        None, "--data", help="Dataset to measure on (default: the model's own validation rows)."
    ),
    texts: Path = typer.Option(
        None, "--texts", help="Embedding models: a file of texts, one per line, to measure on."
    ),
    threads: int = typer.Option(None, "--threads", help="Threads per variant (default: cores)."),
    seconds: float = typer.Option(1.0, "--seconds", help="Seconds per timed measurement."),
    no_register: bool = typer.Option(False, "--no-register", help="Measure only."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Export a model to ONNX, quantize or prune it, and register the variants that pass.

    Each variant is measured against the model (size, latency, throughput, memory, metric);
    those within --max-drop of its metric are registered (exit 1 when one is dropped)."""
    from fermion.optimize.optimizer import OptimizeOptions
    from fermion.optimize.optimizer import optimize as run_optimize
    from fermion.workspace import Workspace

    options = OptimizeOptions(
        quantize=quantize,  # type: ignore[arg-type]  # checked by optimize
        prune=prune,
        prune_mode=prune_mode,  # type: ignore[arg-type]
        fine_tune=fine_tune,
        max_drop=max_drop,
        metric=metric,
        alias=alias,
        auto=auto,
        opset=opset,
        data=data,
        texts=texts,
        threads=threads,
        seconds=seconds,
        register=not no_register,
    )
    err = Console(stderr=True, highlight=False)
    with Workspace.open() as ws, err.status("optimizing") as status:
        result = run_optimize(ws, model, options, progress=lambda text: status.update(text))
    if as_json:
        print_json(result.report.to_dict() | {"run_id": result.run_id})
    else:
        out = console()
        result.report.render(out)
        for version in result.registered:
            out.print(f"registered [bold]{version.ref}[/] (flavor onnx)")
        if result.alias is not None:
            out.print(f"alias [bold]{result.alias[0]}[/] -> version {result.alias[1]}")
        out.print(
            f"report and chart: run {result.run_id}, artifacts " + ", ".join(result.artifacts)
        )
    if not result.passed:
        err.print(
            "[bold red]gate:[/] "
            + "; ".join(
                f"{name}: {result.report.decisions[name].reason}" for name in result.dropped
            )
        )
        raise typer.Exit(1)
