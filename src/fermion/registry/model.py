"""A loaded model: raw rows in, predictions out, with its signature checked on every call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fermion.entities import ModelVersion, Signature
from fermion.errors import InvalidInputError
from fermion.registry.bundle import MANIFEST, read_manifest_file
from fermion.registry.signature import Rows, conform, frame_schema, to_frame

if TYPE_CHECKING:
    import polars as pl  # imported where a frame is built: numeric batches never need it


class Model:
    """What `fermion.models.load("credit@production")` returns.

    `predict(rows)` gives class labels (classification) or values (regression);
    `predict_proba(rows)` gives one column per class, in `classes` order. Rows are a dict, a
    list of dicts, or a pandas or Polars frame holding at least the signature's columns. An
    embedding model (task "embedding") gives one vector per text: `embed(texts)`, or `predict`.
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        estimator: Any,
        preprocessor: Any | None,
        *,
        version: ModelVersion | None = None,
        folder: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.signature = Signature.from_dict(manifest["signature"])
        self.classes: list[Any] = list(manifest.get("classes") or [])
        self._labels = np.asarray(self.classes, dtype=object)  # indexed by class code
        self.flavor: str = manifest["flavor"]
        self.version = version
        self.folder = folder
        self._estimator = estimator
        self._preprocessor = preprocessor
        self._inputs: str = manifest.get("inputs", "matrix")
        from fermion.training.families.base import FittedModel

        # A FittedModel's labels are its likeliest classes: no second call for them.
        self._labels_from_proba = isinstance(estimator, FittedModel)

    def __repr__(self) -> str:
        name = self.version.ref if self.version else "unregistered"
        return f"<Model {name} flavor={self.flavor} task={self.task}>"

    @property
    def task(self) -> str:
        return self.signature.task

    @property
    def estimator(self) -> Any:
        """The framework's own model object (a LightGBM Booster, a scikit-learn estimator...)."""
        inner = getattr(self._estimator, "estimator", self._estimator)
        return getattr(inner, "model", inner)

    def prepare(self, rows: Rows) -> Any:
        """Rows as the estimator takes them: checked against the signature, then encoded."""
        frame = conform(to_frame(rows), self.signature)
        if self._inputs == "frame":
            return frame
        if self._inputs == "pandas":
            return frame.to_pandas()
        if self._preprocessor is None:
            return frame.to_numpy().astype(np.float32)
        return self._preprocessor.transform(frame)

    @property
    def gives_probabilities(self) -> bool:
        return self.task != "regression" and hasattr(self._estimator, "predict_proba")

    def predict(self, rows: Rows) -> np.ndarray:
        if self.task == "embedding":  # one vector per row's text
            frame = conform(to_frame(rows), self.signature)
            return self.embed(frame.get_column(self.signature.inputs[0].name).to_list())
        features = self.prepare(rows)
        if features.shape[0] == 0:
            return np.empty(0)
        return self._outputs(self._estimator.predict(features))

    def predict_with_proba(
        self, rows: Rows, *, proba: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions and, for a classifier that gives them, probabilities, from one
        preparation of the rows (what a server answers with)."""
        return self._predict_features(self.prepare(rows), proba)

    def predict_columns(
        self, columns: Mapping[str, Sequence[Any]], rows: int, *, proba: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """`predict_with_proba` for columns of JSON values whose types the caller checked
        against the signature (a server's batch). The preprocessing reads the values directly
        where it can; otherwise they become a frame first."""
        preprocessor = self._preprocessor
        if self._inputs == "matrix" and preprocessor is not None and preprocessor.reads_values:
            features = preprocessor.transform_values(columns, rows)
            return self._predict_features(features, proba)
        import polars as pl

        frame = pl.DataFrame(dict(columns), schema=frame_schema(self.signature), strict=False)
        return self.predict_with_proba(frame, proba=proba)

    def _predict_features(self, features: Any, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        wanted = proba and self.gives_probabilities
        if features.shape[0] == 0:
            return np.empty(0), np.empty((0, len(self.classes))) if wanted else None
        if not wanted:
            return self._outputs(self._estimator.predict(features)), None
        probabilities = np.asarray(self._estimator.predict_proba(features), dtype=np.float64)
        if self._labels_from_proba:
            return self._outputs(np.argmax(probabilities, axis=1)), probabilities
        return self._outputs(self._estimator.predict(features)), probabilities

    def limit_threads(self, threads: int) -> None:
        """Predict with at most `threads` threads per call, where the framework allows it
        (LightGBM, XGBoost, torch); other models are left as they are."""
        limit = getattr(self._estimator, "limit_threads", None)
        if callable(limit):
            limit(threads)

    def _outputs(self, raw: Any) -> np.ndarray:
        values: np.ndarray = np.asarray(raw)
        if self.task == "regression":
            return values.astype(np.float64).reshape(-1)
        codes = values.astype(np.int64).reshape(-1)
        labels: np.ndarray = self._labels[codes]
        return labels

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 vector per text, as the model makes them (all-MiniLM-L6-v2's are of
        unit length); for embedding models (task "embedding") only."""
        return np.asarray(self._encoder(texts).encode(list(texts)), dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens an embedding model reads of each text (special tokens included)."""
        return list(self._encoder(texts).count_tokens(list(texts)))

    def _encoder(self, texts: Sequence[str]) -> Any:
        if self.task != "embedding":
            raise InvalidInputError(f"{self!r} is not an embedding model")
        if isinstance(texts, str):
            raise InvalidInputError("pass a list of texts, not one string")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(f"texts[{index}] must be a string; got {text!r}")
        return self._estimator

    def predict_proba(self, rows: Rows) -> np.ndarray:
        if self.task == "regression":
            raise InvalidInputError("predict_proba is for classifiers; this model is a regressor")
        features = self.prepare(rows)
        if features.shape[0] == 0:
            return np.empty((0, len(self.classes)))
        if not hasattr(self._estimator, "predict_proba"):
            raise InvalidInputError(f"this {self.flavor} model gives no probabilities")
        return np.asarray(self._estimator.predict_proba(features), dtype=np.float64)

    def predict_frame(self, rows: Rows) -> pl.DataFrame:
        """Predictions as a frame: `prediction`, and a probability column per class."""
        import polars as pl

        frame = to_frame(rows)
        result = {"prediction": self.predict(frame).tolist()}
        if self.task != "regression" and hasattr(self._estimator, "predict_proba"):
            proba = self.predict_proba(frame)
            for index, label in enumerate(self.classes):
                result[f"proba_{label}"] = proba[:, index].tolist()
        return pl.DataFrame(result, strict=False)


def load_folder(folder: Path, *, trusted: bool, version: ModelVersion | None = None) -> Model:
    """Load a model from a materialized bundle folder; the registry checks checksums first."""
    from fermion.registry.flavors import get_flavor
    from fermion.training.preprocess import Preprocessor

    manifest = read_manifest_file(folder / MANIFEST)
    flavor = get_flavor(manifest["flavor"])
    estimator = flavor.load(folder / "model", manifest.get("flavor_meta", {}), trusted=trusted)
    state = manifest.get("preprocessor")
    preprocessor = Preprocessor.from_dict(state) if state else None
    return Model(manifest, estimator, preprocessor, version=version, folder=folder)
