"""The "xgboost" flavor: a Booster in XGBoost's UBJSON format, already cut to its best round."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from fermion.errors import InvalidInputError, StorageError, require
from fermion.training.families.base import THREADS, FittedModel, fields_from_meta
from fermion.training.families.boosting import XGBoostModel

MODEL_FILE = "model.ubj"


class XGBoostFlavor:
    name: ClassVar[str] = "xgboost"
    pickle_based: ClassVar[bool] = False

    def save(self, model: FittedModel, folder: Path) -> dict[str, Any]:
        if not isinstance(model, XGBoostModel):
            raise InvalidInputError(f"the xgboost flavor saves XGBoostModel, not {model!r}")
        require("xgboost", "xgboost")
        import xgboost

        folder.mkdir(parents=True, exist_ok=True)
        model.estimator.save_model(folder / MODEL_FILE)
        return {
            "flavor": self.name,
            "file": MODEL_FILE,
            "library": "xgboost",
            "library_version": xgboost.__version__,
            **model.fields(),
        }

    def load(self, folder: Path, meta: Mapping[str, Any], *, trusted: bool) -> FittedModel:
        require("xgboost", "xgboost")
        import xgboost

        path = folder / MODEL_FILE
        if not path.is_file():
            raise StorageError(f"model file {path} is missing")
        booster = xgboost.Booster(params={"nthread": THREADS}, model_file=path)
        return XGBoostModel(booster, **fields_from_meta(meta))
