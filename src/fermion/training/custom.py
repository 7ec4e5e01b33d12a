"""Custom training in any framework: the user's function fits, Fermion does the rest.

```python
def fit(data: TrainingData, run: Run):
    model = MyNet().fit(data.X_train, data.y_train)
    run.log_metric("epochs", 10)
    return model          # has predict(X), and predict_proba(X) for a classifier

fermion.train("credit:2", target="Status", model=fit)
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError
from fermion.registry.signature import conform, signature_from_schema
from fermion.training.families.base import FittedModel, Floats, Matrix
from fermion.training.metrics import Task

if TYPE_CHECKING:
    from fermion.tracking import Run

Inputs = Literal["matrix", "frame", "pandas"]


@dataclass
class TrainingData:
    """What a custom training function receives.

    `X_*` are float32 matrices built by Fermion's preprocessing (`inputs="matrix"`), or the raw
    feature columns as Polars (`"frame"`) or pandas (`"pandas"`) frames; the served model gets
    its inputs the same way. `y_*` are class codes 0..k-1 (see `classes`) or float values.
    Parts a split lacks are None.
    """

    task: Task
    target: str
    features: list[str]
    classes: list[Any]
    X_train: Any
    y_train: npt.NDArray[Any]
    X_valid: Any = None
    y_valid: npt.NDArray[Any] | None = None
    X_test: Any = None
    y_test: npt.NDArray[Any] | None = None
    feature_names: list[str] = field(default_factory=list)
    categorical_features: list[int] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @property
    def n_classes(self) -> int:
        return len(self.classes)


class UserModel(FittedModel):
    """A user's model object behind the `FittedModel` interface; saved with cloudpickle."""

    flavor: ClassVar[str] = "python"

    def __init__(self, model: Any, *, task: Task, n_classes: int, n_features: int) -> None:
        super().__init__(model, task=task, n_classes=n_classes, n_features=n_features)
        self.model = model

    def predict(self, X: Any) -> npt.NDArray[Any]:
        output = np.asarray(self.model.predict(X))
        if self.task == "regression":
            values: npt.NDArray[np.float64] = output.astype(np.float64).reshape(-1)
            return values
        if output.ndim == 2:  # probabilities, as some frameworks' predict returns
            output = np.argmax(output, axis=1)
        codes: npt.NDArray[np.int64] = output.astype(np.int64).reshape(-1)
        return codes

    def predict_proba(self, X: Any) -> Floats:
        if self.task == "regression":
            raise InvalidInputError("predict_proba needs a classification model")
        if callable(getattr(self.model, "predict_proba", None)):
            proba = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        else:  # Keras-style: predict gives the probabilities
            output = np.asarray(self.model.predict(X))
            if not np.issubdtype(output.dtype, np.floating):
                raise InvalidInputError(
                    "a custom classifier must give class probabilities: add predict_proba(X), "
                    "or make predict(X) return them"
                )
            proba = output.astype(np.float64)
        if proba.ndim == 2 and proba.shape[1] == 1 and self.n_classes == 2:
            proba = proba[:, 0]
        if proba.ndim == 1 and self.n_classes == 2:
            proba = np.column_stack([1.0 - proba, proba])
        if proba.ndim != 2 or proba.shape[1] != self.n_classes:
            raise InvalidInputError(
                f"the custom model must give probabilities with one column per class "
                f"({self.n_classes}) from predict_proba, or from predict when it has no "
                f"predict_proba; got shape {proba.shape}"
            )
        return proba

    def _predict_raw(self, X: Matrix) -> Floats:
        if self.task == "regression":
            return self.predict(X)
        return self.predict_proba(X)


def build_training_data(
    prepared: Any,
    inputs: Inputs,
    preprocessor: Any | None,
    params: Mapping[str, Any],
    seed: int,
) -> TrainingData:
    signature = signature_from_schema(
        prepared.dataset.schema, prepared.features, task=prepared.task, target=prepared.target
    )

    def features(part: str) -> Any:
        frame = prepared.frames.get(part)
        if frame is None or frame.height == 0:
            return None
        if preprocessor is not None:
            return preprocessor.transform(frame)
        rows = conform(frame, signature)
        return rows.to_pandas() if inputs == "pandas" else rows

    def target(part: str) -> npt.NDArray[Any] | None:
        frame = prepared.frames.get(part)
        if frame is None or frame.height == 0:
            return None
        return np.asarray(prepared.encoding.encode(frame.get_column(prepared.target)))

    y_train = target("train")
    assert y_train is not None  # prepare() refuses an empty training split
    return TrainingData(
        task=prepared.task,
        target=prepared.target,
        features=list(prepared.features),
        classes=list(prepared.encoding.classes),
        X_train=features("train"),
        y_train=y_train,
        X_valid=features("valid"),
        y_valid=target("valid"),
        X_test=features("test"),
        y_test=target("test"),
        feature_names=preprocessor.feature_names if preprocessor else list(prepared.features),
        categorical_features=preprocessor.categorical_feature_indices if preprocessor else [],
        params=dict(params),
        seed=seed,
    )


def wrap_user_model(model: Any, data: TrainingData, inputs: Inputs = "matrix") -> FittedModel:
    """The user's model behind the `FittedModel` interface. Classifiers give probabilities
    from `predict_proba`, or from `predict` (as Keras models do)."""
    if model is None:
        raise InvalidInputError("the custom training function returned no model")
    if isinstance(model, FittedModel):
        raise InvalidInputError("return your framework's model object, not a FittedModel")
    if not callable(getattr(model, "predict", None)) and not _is_torch_module(model):
        raise InvalidInputError(
            f"the custom training function returned a {type(model).__name__}, which has no "
            "predict(X) method"
        )
    n_features = len(data.feature_names)
    if inputs == "matrix" and type(model).__module__.startswith("sklearn."):
        from fermion.training.families.sklearn_models import SklearnModel

        # A stock scikit-learn estimator saves pickle-free through skops.
        return SklearnModel(model, task=data.task, n_classes=data.n_classes, n_features=n_features)
    if inputs == "matrix" and _is_torch_module(model):
        from fermion.registry.flavors.torch_export_flavor import export_module

        return export_module(
            model,
            np.asarray(data.X_train[:4], dtype=np.float32),
            task=data.task,
            n_classes=data.n_classes,
            n_features=n_features,
        )
    return UserModel(model, task=data.task, n_classes=data.n_classes, n_features=n_features)


def _is_torch_module(model: Any) -> bool:
    return any(
        cls.__module__ == "torch.nn.modules.module" and cls.__name__ == "Module"
        for cls in type(model).__mro__
    )


CustomFit = Callable[[TrainingData, "Run"], Any]
