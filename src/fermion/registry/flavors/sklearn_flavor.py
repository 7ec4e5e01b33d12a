"""The "sklearn" flavor: scikit-learn estimators saved with skops, which does not unpickle.

skops only instantiates types it is told to trust. Types from scikit-learn and numpy are trusted;
a file holding any other type is refused unless the caller trusts its source.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fermion.errors import ConflictError, InvalidInputError, StorageError
from fermion.training.families.base import FittedModel, fields_from_meta
from fermion.training.families.sklearn_models import LinearWeights, SklearnModel

MODEL_FILE = "model.skops"
LINEAR_FILE = "linear.npz"  # a linear model's weights, so serving it needs no scikit-learn
_SAFE_PREFIXES = ("sklearn.", "numpy.")
# HistGradientBoosting's categorical preprocessing holds a partial of sklearn's check_array
_SAFE_NAMES = frozenset({"functools.partial"})
_SKOPS_IMPORT = threading.Lock()  # two models loading at once must not both swap the walk out


def skops_io() -> Any:
    """`skops.io`, imported without walking every scikit-learn package.

    On import, skops lists scikit-learn's estimators as trusted by default with
    `all_estimators()`, which imports every scikit-learn package (about 0.3 s of a server's
    start, and torch through scikit-learn's array-API adapter for it). That list decides
    nothing for Fermion, which trusts every `sklearn.` type itself (`_SAFE_PREFIXES`), so skops
    is imported with the list empty. Any other caller of skops in this process then gets
    stricter defaults (it must name scikit-learn's types in `trusted`), never looser ones."""
    with _SKOPS_IMPORT:
        if "skops.io" not in sys.modules:
            import sklearn.utils

            walk = sklearn.utils.all_estimators
            sklearn.utils.all_estimators = _no_estimators
            try:
                import skops.io  # noqa: F401  (imported here, without the walk)
            finally:
                sklearn.utils.all_estimators = walk
    import skops.io as sio

    return sio


def _no_estimators(type_filter: Any = None) -> list[tuple[str, type]]:
    return []


def untrusted_types(found: list[str]) -> list[str]:
    """Of the types skops found outside its defaults, those outside scikit-learn and numpy."""
    return [
        name for name in found if not name.startswith(_SAFE_PREFIXES) and name not in _SAFE_NAMES
    ]


class SklearnFlavor:
    name: ClassVar[str] = "sklearn"
    pickle_based: ClassVar[bool] = False

    def save(self, model: FittedModel, folder: Path) -> dict[str, Any]:
        if not isinstance(model, SklearnModel):
            raise InvalidInputError(f"the sklearn flavor saves SklearnModel, not {model!r}")
        import sklearn
        import skops

        sio = skops_io()
        folder.mkdir(parents=True, exist_ok=True)
        sio.dump(model.estimator, folder / MODEL_FILE)
        linear: dict[str, Any] = {}
        if model.weights is not None:
            arrays = model.weights._asdict()
            if arrays["classes"] is None:
                del arrays["classes"]
            np.savez(folder / LINEAR_FILE, **arrays)
            linear["linear_file"] = LINEAR_FILE
        return {
            "flavor": self.name,
            "file": MODEL_FILE,
            **linear,
            "library": "scikit-learn",
            "library_version": sklearn.__version__,
            "skops_version": skops.__version__,
            **model.fields(),
        }

    def load(self, folder: Path, meta: Mapping[str, Any], *, trusted: bool) -> FittedModel:
        path = folder / MODEL_FILE
        if not path.is_file():
            raise StorageError(f"model file {path} is missing")
        weights = _linear_weights(folder, meta) if trusted else None
        if weights is not None:
            return SklearnModel(
                None,
                weights=weights,
                load_estimator=lambda: self._estimator(path, trusted=True),
                **fields_from_meta(meta),
            )
        return SklearnModel(self._estimator(path, trusted=trusted), **fields_from_meta(meta))

    def _estimator(self, path: Path, *, trusted: bool) -> Any:
        sio = skops_io()
        found = sio.get_untrusted_types(file=path)
        unsafe = untrusted_types(found)
        if unsafe and not trusted:
            raise ConflictError(
                f"{path.name} holds types outside scikit-learn and numpy "
                f"({', '.join(unsafe)}); pass trusted=True if you trust its source"
            )
        return sio.load(path, trusted=found)


def _linear_weights(folder: Path, meta: Mapping[str, Any]) -> LinearWeights | None:
    """The weights file of a linear model saved with one (older versions have none)."""
    name = meta.get("linear_file")
    if not isinstance(name, str) or not (folder / name).is_file():
        return None
    try:
        with np.load(folder / name, allow_pickle=False) as arrays:
            classes = arrays["classes"] if "classes" in arrays.files else None
            return LinearWeights(arrays["coef"], arrays["intercept"], classes)
    except (OSError, ValueError, KeyError) as exc:
        raise StorageError(f"cannot read {name}: {exc}") from exc
