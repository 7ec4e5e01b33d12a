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

from fermion.errors import ConflictError, InvalidInputError, StorageError
from fermion.training.families.base import FittedModel, fields_from_meta
from fermion.training.families.sklearn_models import SklearnModel

MODEL_FILE = "model.skops"
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
        return {
            "flavor": self.name,
            "file": MODEL_FILE,
            "library": "scikit-learn",
            "library_version": sklearn.__version__,
            "skops_version": skops.__version__,
            **model.fields(),
        }

    def load(self, folder: Path, meta: Mapping[str, Any], *, trusted: bool) -> FittedModel:
        sio = skops_io()
        path = folder / MODEL_FILE
        if not path.is_file():
            raise StorageError(f"model file {path} is missing")
        found = sio.get_untrusted_types(file=path)
        unsafe = untrusted_types(found)
        if unsafe and not trusted:
            raise ConflictError(
                f"{path.name} holds types outside scikit-learn and numpy "
                f"({', '.join(unsafe)}); pass trusted=True if you trust its source"
            )
        estimator = sio.load(path, trusted=found)
        return SklearnModel(estimator, **fields_from_meta(meta))
