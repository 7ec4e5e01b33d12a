"""The "python" flavor: any Python object, pickled with cloudpickle.

For custom user models. Unpickling runs arbitrary code, so loading needs `trusted=True`.
"""

from __future__ import annotations

import pickle
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from fermion.errors import ConflictError, InvalidInputError, StorageError
from fermion.training.families.base import FittedModel

MODEL_FILE = "model.pkl"


def save_object(obj: object, folder: Path) -> dict[str, Any]:
    """Pickle `obj` (by value where cloudpickle can) into `folder`; return its metadata."""
    import cloudpickle

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / MODEL_FILE).open("wb") as file:
        cloudpickle.dump(obj, file)
    return {
        "flavor": PythonFlavor.name,
        "file": MODEL_FILE,
        "library": "cloudpickle",
        "library_version": cloudpickle.__version__,
        "python_version": platform.python_version(),
    }


def load_object(folder: Path, meta: Mapping[str, Any], trusted: bool) -> object:
    """Unpickle the object `save_object` wrote; refused unless its source is trusted."""
    if not trusted:
        raise ConflictError(
            "this model loads pickled Python objects, which can run any code; "
            "pass trusted=True if you trust its source"
        )
    path = folder / MODEL_FILE
    if not path.is_file():
        raise StorageError(f"model file {path} is missing")
    import cloudpickle  # noqa: F401  # objects pickled by value need it importable

    with path.open("rb") as file:
        return pickle.load(file)


class PythonFlavor:
    """A whole `FittedModel` pickled, for models no pickle-free flavor covers."""

    name: ClassVar[str] = "python"
    pickle_based: ClassVar[bool] = True

    def save(self, model: FittedModel, folder: Path) -> dict[str, Any]:
        return {**save_object(model, folder), **model.fields()}

    def load(self, folder: Path, meta: Mapping[str, Any], *, trusted: bool) -> FittedModel:
        model = load_object(folder, meta, trusted)
        if not isinstance(model, FittedModel):
            raise InvalidInputError(
                f"{folder / MODEL_FILE} holds a {type(model).__name__}, not a fitted model"
            )
        return model
