"""The rows an optimize run measures on: the model's own validation split, encoded once.

A tabular model's rows are its preprocessed float32 matrix (what the ONNX graph takes) and the
true targets as class codes or values; the training rows calibrate static int8 and fine-tune
a pruned network. An embedding model's rows are texts: the user's, else a bundled sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import polars as pl

    from fermion.registry.model import Model
    from fermion.workspace import Workspace

SAMPLE_TEXTS = Path(__file__).with_name("sample_texts.txt")
MAX_TRAIN_ROWS = 20_000  # enough to calibrate int8 ranges and fine-tune for a few epochs


@dataclass(frozen=True)
class Rows:
    """What the variants are measured and gated on, and where it came from."""

    source: str  # "credit:2 (valid)", "12 texts from notes.txt", ...
    X_valid: npt.NDArray[np.float32] | None = None
    y_valid: npt.NDArray[Any] | None = None
    X_train: npt.NDArray[np.float32] | None = None
    y_train: npt.NDArray[Any] | None = None
    texts: tuple[str, ...] = ()

    @property
    def inputs(self) -> npt.NDArray[np.float32] | list[str]:
        """What each variant predicts on: the validation matrix, or the texts."""
        return list(self.texts) if self.texts else _present(self.X_valid)

    @property
    def count(self) -> int:
        return len(self.texts) if self.texts else len(_present(self.X_valid))


def model_rows(ws: Workspace, model: Model, data: str | None = None) -> Rows:
    """The validation rows of `data` (a dataset reference), else of the data and split the
    model was trained on; without a validation part, the test part, else every row."""
    if model.task == "embedding":
        raise InvalidInputError("an embedding model is measured on texts, not a dataset")
    if model._inputs != "matrix":
        raise InvalidInputError(
            f"this model takes raw {model._inputs} columns, not Fermion's feature matrix, so "
            "it has no ONNX graph to optimize"
        )
    ref = data or model.manifest.get("data")
    if not ref:
        raise InvalidInputError(
            "the model records no training data (imported?): name a dataset to measure on"
        )
    try:
        dataset = ws.datasets.get(str(ref))
    except NotFoundError as exc:
        raise InvalidInputError(f"cannot read the model's data {ref}: {exc}") from exc
    frames = _parts(dataset, model, explicit=data is not None)
    part = next((p for p in ("valid", "test") if p in frames), "all")
    valid = frames.get(part, dataset.to_polars())
    train = frames.get("train", valid)
    if train.height > MAX_TRAIN_ROWS:
        train = train.sample(MAX_TRAIN_ROWS, seed=0)
    X_valid, y_valid = _encoded(model, valid)
    X_train, y_train = _encoded(model, train)
    return Rows(f"{dataset.ref} ({part})", X_valid, y_valid, X_train, y_train)


def text_rows(texts: list[str] | None = None, path: Path | None = None) -> Rows:
    """Texts for an embedding model: given, read one per line from `path`, or the sample."""
    if texts is not None:
        source = f"{len(texts)} texts"
    else:
        file = path or SAMPLE_TEXTS
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InvalidInputError(f"cannot read texts from {file}: {exc.strerror}") from exc
        texts = [line.strip() for line in lines if line.strip()]
        source = f"{len(texts)} texts from {'the bundled sample' if path is None else file}"
    if not texts or not all(isinstance(text, str) for text in texts):
        raise InvalidInputError("an embedding model needs at least one text to measure on")
    return Rows(source, texts=tuple(texts))


def _parts(dataset: Any, model: Model, *, explicit: bool) -> dict[str, pl.DataFrame]:
    split_id = (model.manifest.get("split") or {}).get("id")
    splits = dataset.splits
    chosen = next((s for s in splits if s.id == split_id), None)
    if chosen is None and explicit and splits:
        chosen = splits[0]
    if chosen is None:
        return {}
    frames: dict[str, pl.DataFrame] = dataset.split_frames(chosen)
    return frames


def _encoded(model: Model, frame: pl.DataFrame) -> tuple[npt.NDArray[np.float32], Any]:
    from fermion.training.evaluation import _as_class_type
    from fermion.training.task import TargetEncoding, check_target

    target = model.signature.target
    if not target:
        raise InvalidInputError("the model records no target column to score against")
    if frame.height == 0:
        raise InvalidInputError("there are no rows to measure on")
    X = np.ascontiguousarray(model.prepare(frame), dtype=np.float32)
    column = check_target(frame, target)
    encoding = TargetEncoding(model.task, tuple(model.classes))  # type: ignore[arg-type]
    y = encoding.encode(_as_class_type(column, model.classes))
    return X, y


def _present(X: npt.NDArray[np.float32] | None) -> npt.NDArray[np.float32]:
    if X is None:
        raise InvalidInputError("no rows to measure on")
    return X
