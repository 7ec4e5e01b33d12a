"""Gradient boosting with LightGBM and XGBoost, early-stopped on the validation split.

Both train through their native Booster APIs; one per-round callback feeds a `StepLog`, which
reports progress, asks the pruning hook and applies the patience. The fitted model predicts with
the best round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from fermion.errors import require
from fermion.training.families.base import (
    ALL_TASKS,
    FitInputs,
    FittedModel,
    Floats,
    Matrix,
    ModelFamily,
    Preprocessing,
    StepLog,
    Task,
    binary_columns,
)
from fermion.training.families.params import (
    ParamSpec,
    get_float,
    get_int,
    get_opt_int,
)

_LIGHTGBM_OBJECTIVES: Mapping[Task, tuple[str, str]] = {
    "binary": ("binary", "binary_logloss"),
    "multiclass": ("multiclass", "multi_logloss"),
    "regression": ("regression", "rmse"),
}
_XGBOOST_OBJECTIVES: Mapping[Task, tuple[str, str]] = {
    "binary": ("binary:logistic", "logloss"),
    "multiclass": ("multi:softprob", "mlogloss"),
    "regression": ("reg:squarederror", "rmse"),
}


def _round_specs() -> list[ParamSpec]:
    return [
        ParamSpec("num_boost_round", int, 1000, "most boosting rounds", ge=1),
        ParamSpec(
            "early_stopping_rounds",
            int,
            50,
            "rounds without validation improvement before stopping, None to never stop",
            nullable=True,
            ge=1,
        ),
    ]


class LightGBMModel(FittedModel):
    """A LightGBM Booster predicting with `best_step` rounds."""

    flavor: ClassVar[str] = "lightgbm"

    def _predict_raw(self, X: Matrix) -> Floats:
        options = {"num_threads": self.predict_threads} if self.predict_threads else {}
        out = self.estimator.predict(X, num_iteration=self.best_step, **options)
        out = np.asarray(out, dtype=np.float64)
        return binary_columns(out) if self.task == "binary" else out


class XGBoostModel(FittedModel):
    """An XGBoost Booster already cut to its best round."""

    flavor: ClassVar[str] = "xgboost"

    def limit_threads(self, threads: int) -> None:
        super().limit_threads(threads)
        self.estimator.set_param({"nthread": self.predict_threads})

    def _predict_raw(self, X: Matrix) -> Floats:
        out = np.asarray(self.estimator.inplace_predict(X), dtype=np.float64)
        return binary_columns(out) if self.task == "binary" else out


class LightGBMFamily(ModelFamily):
    name: ClassVar[str] = "lightgbm"
    flavor: ClassVar[str] = "lightgbm"
    extra: ClassVar[str | None] = "lightgbm"
    library: ClassVar[str] = "lightgbm"
    preprocessing: ClassVar[Preprocessing] = "trees"
    tasks: ClassVar[frozenset[Task]] = ALL_TASKS

    def params(self, task: Task) -> list[ParamSpec]:
        return [
            *_round_specs(),
            ParamSpec("learning_rate", float, 0.05, "shrinkage per round", gt=0),
            ParamSpec("num_leaves", int, 31, "leaves per tree", ge=2),
            ParamSpec("max_depth", int, None, "depth limit, None for none", nullable=True, ge=1),
            ParamSpec("min_data_in_leaf", int, 20, "rows per leaf", ge=1),
            ParamSpec("feature_fraction", float, 0.9, "features sampled per tree", gt=0, le=1),
            ParamSpec("bagging_fraction", float, 0.8, "rows sampled per bagging", gt=0, le=1),
            ParamSpec("bagging_freq", int, 1, "bag every k rounds, 0 for never", ge=0),
            ParamSpec("lambda_l1", float, 0.0, "L1 penalty on leaf values", ge=0),
            ParamSpec("lambda_l2", float, 0.0, "L2 penalty on leaf values", ge=0),
        ]

    def _fit(self, inputs: FitInputs, params: Mapping[str, object]) -> FittedModel:
        require("lightgbm", "lightgbm")
        import lightgbm as lgb

        objective, metric = _LIGHTGBM_OBJECTIVES[inputs.task]
        booster_params: dict[str, Any] = {
            "objective": objective,
            "metric": metric,
            "learning_rate": get_float(params, "learning_rate"),
            "num_leaves": get_int(params, "num_leaves"),
            "max_depth": get_opt_int(params, "max_depth") or -1,
            "min_data_in_leaf": get_int(params, "min_data_in_leaf"),
            "feature_fraction": get_float(params, "feature_fraction"),
            "bagging_fraction": get_float(params, "bagging_fraction"),
            "bagging_freq": get_int(params, "bagging_freq"),
            "lambda_l1": get_float(params, "lambda_l1"),
            "lambda_l2": get_float(params, "lambda_l2"),
            "num_threads": inputs.threads,
            "seed": inputs.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if inputs.task == "multiclass":
            booster_params["num_class"] = inputs.n_classes
        train_set = lgb.Dataset(
            inputs.X,
            label=inputs.y,
            categorical_feature=list(inputs.categorical_features) or "auto",
            params={"verbosity": -1},
        )
        if inputs.valid is not None:
            valid_set = lgb.Dataset(inputs.valid[0], label=inputs.valid[1], reference=train_set)
            sets, names = [valid_set], ["valid"]
        else:
            sets, names = [train_set], ["train"]
        rounds = get_int(params, "num_boost_round")
        log = StepLog(inputs, rounds, get_opt_int(params, "early_stopping_rounds"))

        def after_round(env: lgb.callback.CallbackEnv) -> None:
            results = env.evaluation_result_list or []
            if log.record(float(results[0][2])):
                raise lgb.callback.EarlyStopException(log.chosen_step() - 1, results)

        booster = lgb.train(
            booster_params,
            train_set,
            num_boost_round=rounds,
            valid_sets=sets,
            valid_names=names,
            callbacks=[after_round],
            # False would round-trip the model through a string (~10 ms a fit, a tenth of a
            # small tuning trial); the booster is only predicted from and saved.
            keep_training_booster=True,
        )
        booster.free_dataset()  # keep no reference to the training rows
        best = log.chosen_step()
        booster.best_iteration = best
        return LightGBMModel(
            booster,
            task=inputs.task,
            n_classes=inputs.n_classes,
            n_features=inputs.n_features,
            best_step=best,
            history=log.history(),
        )


class XGBoostFamily(ModelFamily):
    name: ClassVar[str] = "xgboost"
    flavor: ClassVar[str] = "xgboost"
    extra: ClassVar[str | None] = "xgboost"
    library: ClassVar[str] = "xgboost"
    preprocessing: ClassVar[Preprocessing] = "trees"
    tasks: ClassVar[frozenset[Task]] = ALL_TASKS

    def params(self, task: Task) -> list[ParamSpec]:
        return [
            *_round_specs(),
            ParamSpec("eta", float, 0.05, "learning rate", gt=0),
            ParamSpec("max_depth", int, 6, "depth limit", ge=1),
            ParamSpec("min_child_weight", float, 1.0, "hessian sum per leaf", ge=0),
            ParamSpec("subsample", float, 1.0, "rows sampled per tree", gt=0, le=1),
            ParamSpec("colsample_bytree", float, 1.0, "features sampled per tree", gt=0, le=1),
            ParamSpec("lambda", float, 1.0, "L2 penalty on leaf values", ge=0),
            ParamSpec("alpha", float, 0.0, "L1 penalty on leaf values", ge=0),
        ]

    def _fit(self, inputs: FitInputs, params: Mapping[str, object]) -> FittedModel:
        require("xgboost", "xgboost")
        import xgboost as xgb

        objective, metric = _XGBOOST_OBJECTIVES[inputs.task]
        booster_params: dict[str, Any] = {
            "objective": objective,
            "eval_metric": metric,
            "tree_method": "hist",
            "nthread": inputs.threads,
            "seed": inputs.seed,
            "verbosity": 0,
        }
        for name in ("eta", "min_child_weight", "subsample", "colsample_bytree", "lambda", "alpha"):
            booster_params[name] = get_float(params, name)
        booster_params["max_depth"] = get_int(params, "max_depth")
        if inputs.task == "multiclass":
            booster_params["num_class"] = inputs.n_classes
        train = xgb.DMatrix(inputs.X, label=inputs.y, nthread=inputs.threads)
        if inputs.valid is not None:
            evals = [
                (
                    xgb.DMatrix(inputs.valid[0], label=inputs.valid[1], nthread=inputs.threads),
                    "valid",
                )
            ]
        else:
            evals = [(train, "train")]
        rounds = get_int(params, "num_boost_round")
        log = StepLog(inputs, rounds, get_opt_int(params, "early_stopping_rounds"))

        class AfterRound(xgb.callback.TrainingCallback):
            def after_iteration(
                self, model: Any, epoch: int, evals_log: xgb.callback.TrainingCallback.EvalsLog
            ) -> bool:
                last = evals_log[evals[0][1]][metric][-1]
                return log.record(float(last[0] if isinstance(last, tuple) else last))

        booster = xgb.train(
            booster_params,
            train,
            num_boost_round=rounds,
            evals=evals,
            callbacks=[AfterRound()],
            verbose_eval=False,
        )
        best = log.chosen_step()
        if best < booster.num_boosted_rounds():
            booster = booster[:best]
        return XGBoostModel(
            booster,
            task=inputs.task,
            n_classes=inputs.n_classes,
            n_features=inputs.n_features,
            best_step=best,
            history=log.history(),
        )
