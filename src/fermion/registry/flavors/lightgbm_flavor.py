"""The "lightgbm" flavor: a Booster in LightGBM's text format, cut to its best round."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from fermion.errors import InvalidInputError, StorageError, require
from fermion.training.families.base import FittedModel, fields_from_meta
from fermion.training.families.boosting import LightGBMModel

MODEL_FILE = "model.txt"


class LightGBMFlavor:
    name: ClassVar[str] = "lightgbm"
    pickle_based: ClassVar[bool] = False

    def save(self, model: FittedModel, folder: Path) -> dict[str, Any]:
        if not isinstance(model, LightGBMModel):
            raise InvalidInputError(f"the lightgbm flavor saves LightGBMModel, not {model!r}")
        require("lightgbm", "lightgbm")
        import lightgbm

        folder.mkdir(parents=True, exist_ok=True)
        model.estimator.save_model(folder / MODEL_FILE, num_iteration=model.best_step)
        return {
            "flavor": self.name,
            "file": MODEL_FILE,
            "library": "lightgbm",
            "library_version": lightgbm.__version__,
            **model.fields(),
        }

    def load(self, folder: Path, meta: Mapping[str, Any], *, trusted: bool) -> FittedModel:
        require("lightgbm", "lightgbm")
        import lightgbm

        path = folder / MODEL_FILE
        if not path.is_file():
            raise StorageError(f"model file {path} is missing")
        booster = lightgbm.Booster(model_file=path)
        return LightGBMModel(booster, **fields_from_meta(meta))
