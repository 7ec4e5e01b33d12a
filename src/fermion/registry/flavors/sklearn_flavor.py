"""The "sklearn" flavor: scikit-learn estimators saved with skops, which does not unpickle.

skops only instantiates types it is told to trust. Types from scikit-learn and numpy are trusted;
a file holding any other type is refused unless the caller trusts its source.
"""

from __future__ import annotations

import sys
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


class _SkipTorchAdapter:
    """An import finder that refuses scikit-learn's array-API adapter for torch.

    Importing `skops.io` builds its list of trusted types by walking every scikit-learn
    package, importing each; one is the adapter for torch arrays, which imports torch (about
    2 s, more than everything else a server loads) though no estimator needs it. The walk
    skips a package whose import fails."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "sklearn.externals.array_api_compat.torch":
            raise ImportError("not needed to list scikit-learn's estimators")


def skops_io() -> Any:
    """`skops.io`, imported without importing torch when torch is not loaded already."""
    if "skops.io" not in sys.modules and "torch" not in sys.modules:
        finder = _SkipTorchAdapter()
        sys.meta_path.insert(0, finder)
        try:
            import skops.io  # noqa: F401  (imported here, under the finder)
        finally:
            sys.meta_path.remove(finder)
    import skops.io as sio

    return sio


def untrusted_types(path: Path) -> list[str]:
    """Types in a skops file outside scikit-learn, numpy and skops' own defaults."""
    sio = skops_io()

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
        unsafe = untrusted_types(path)
        if unsafe and not trusted:
            raise ConflictError(
                f"{path.name} holds types outside scikit-learn and numpy "
                f"({', '.join(unsafe)}); pass trusted=True if you trust its source"
            )
        estimator = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        return SklearnModel(estimator, **fields_from_meta(meta))
