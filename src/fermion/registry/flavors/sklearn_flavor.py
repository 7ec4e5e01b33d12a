"""The "sklearn" flavor: scikit-learn estimators saved with skops, which does not unpickle.

skops only instantiates types it is told to trust. Types from scikit-learn and numpy are trusted;
a file holding any other type is refused unless the caller trusts its source.
"""

from __future__ import annotations

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


def untrusted_types(path: Path) -> list[str]:
    """Types in a skops file outside scikit-learn, numpy and skops' own defaults."""
    import skops.io as sio

    return [
        name
        for name in sio.get_untrusted_types(file=path)
        if not name.startswith(_SAFE_PREFIXES) and name not in _SAFE_NAMES
    ]


class SklearnFlavor:
    name: ClassVar[str] = "sklearn"
    pickle_based: ClassVar[bool] = False

    def save(self, model: FittedModel, folder: Path) -> dict[str, Any]:
        if not isinstance(model, SklearnModel):
            raise InvalidInputError(f"the sklearn flavor saves SklearnModel, not {model!r}")
        import sklearn
        import skops
        import skops.io as sio

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
        import skops.io as sio

        path = folder / MODEL_FILE
        if not path.is_file():
            raise StorageError(f"model file {path} is missing")
        unsafe = untrusted_types(path)
        if unsafe and not trusted:
            raise ConflictError(
                f"{path.name} holds types outside scikit-learn and numpy "
                f"({', '.join(unsafe)}); pass trusted=True if you trust its source"
            )
        estimator = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        return SklearnModel(estimator, **fields_from_meta(meta))
