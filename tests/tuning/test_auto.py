"""`--model auto`: one study searching across model families."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from fermion.tuning.auto import FAMILY_PARAM, MultiFamilySpace, auto_space
from fermion.workspace import Workspace


def test_each_family_is_searched_under_its_own_names() -> None:
    space = auto_space("binary")
    assert {"lightgbm", "xgboost", "logistic"} <= set(space.families)
    assert "linear" not in space.families  # regression only
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        family, params = space.suggest(trial)
        assert trial.params[FAMILY_PARAM] == family
        assert all(name.startswith(f"{family}.") for name in trial.params if name != "model")
        assert params  # unprefixed, as the family takes them
        study.tell(trial, 0.5)
    again = MultiFamilySpace.from_dict(space.to_dict())
    assert again.fingerprint() == space.fingerprint()


def test_warm_start_enqueues_every_familys_defaults() -> None:
    space = auto_space("regression")
    defaults = space.defaults()
    assert [d[FAMILY_PARAM] for d in defaults] == space.families
    assert "linear" in space.families and "logistic" not in space.families


def test_tune_auto_registers_the_best_family(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credit_csv: Any
) -> None:
    from fermion.tuning.tuner import tune

    monkeypatch.chdir(tmp_path)
    with Workspace.init(tmp_path) as ws:
        ws.datasets.add(credit_csv(tmp_path / "credit.csv", seed=4, rows=150), name="credit")
        result = tune(ws, "credit", "status", "auto", trials=5, folds=2, pruner="none")
        families = {t["family"] for t in [result.report["best"]]}
        assert result.final is not None and result.final.model is not None
        manifest = ws.models.manifest(result.final.model)
        assert manifest["family"] in families
        trials = ws.runs.list(parent_id=result.run_id)
        assert len({r.params["model"] for r in trials}) >= 5  # every family's defaults ran
