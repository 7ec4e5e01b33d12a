"""Models as the server holds them: a loaded version, its input checker and its batcher."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fermion.entities import LogicalType, ModelVersion
from fermion.serving.batching import Batcher
from fermion.serving.inputs import Columns, InputChecker
from fermion.serving.options import BatchOptions

if TYPE_CHECKING:
    from fermion.registry.model import Model


@dataclass(frozen=True)
class Prediction:
    """A model call's output, row-aligned: labels, values or embedding vectors (float32 rows),
    and class probabilities."""

    values: list[Any]
    probabilities: np.ndarray | None = None

    def slice(self, start: int, stop: int) -> Prediction:
        proba = None if self.probabilities is None else self.probabilities[start:stop]
        return Prediction(self.values[start:stop], proba)

    @staticmethod
    def join(parts: Sequence[Prediction]) -> Prediction:
        values = [v for part in parts for v in part.values]
        probas = [p.probabilities for p in parts]
        if any(p is None for p in probas):
            return Prediction(values)
        return Prediction(values, np.concatenate(probas))  # type: ignore[arg-type]


def _warmup_value(kind: str) -> Any:
    values: dict[str, Any] = {
        LogicalType.INTEGER: 0,
        LogicalType.FLOAT: 0.0,
        LogicalType.BOOLEAN: False,
        LogicalType.DATETIME: "2000-01-01T00:00:00",
    }
    return values.get(kind, "")


class ServedModel:
    """One loaded model version behind one served name."""

    def __init__(
        self,
        name: str,
        ref: str,
        model: Model,
        *,
        options: BatchOptions,
        executor: Executor,
        slots: int,
        on_batch: Any = None,
    ) -> None:
        assert model.version is not None
        self.name = name
        self.ref = ref
        self.model = model
        self.version: ModelVersion = model.version
        self.load_seconds = 0.0  # set by `load_served`
        model.limit_threads(1)  # calls run side by side in the inference threads
        self.checker = InputChecker(model.signature)
        self.classes: list[Any] = list(model.classes)
        self._with_proba = model.gives_probabilities
        self.batcher: Batcher[Prediction] = Batcher(
            self._call, options, executor, slots=slots, join=Prediction.join, on_batch=on_batch
        )

    @property
    def task(self) -> str:
        return self.model.task

    async def predict(self, columns: Columns, rows: int) -> Prediction:
        return await self.batcher.submit(columns, rows)  # type: ignore[no-any-return]

    def _call(self, columns: Columns, rows: int) -> Prediction:
        """One model call on a batch; runs in the inference thread pool."""
        if self.task == "embedding":  # one encode call for the batch's texts; a vector per row
            return Prediction(list(self.model.embed(columns[self.checker.names[0]])))
        values, proba = self.model.predict_columns(columns, rows, proba=self._with_proba)
        return Prediction(values.tolist(), proba)

    def warm_up(self) -> None:
        """One call on a made-up row, so a version that cannot answer never goes live."""
        row = {spec.name: _warmup_value(spec.type) for spec in self.model.signature.inputs}
        columns, rows = self.checker.from_rows([row])
        self._call(columns, rows)


def load_served(
    registry: Any,
    name: str,
    ref: str,
    version: ModelVersion,
    *,
    options: BatchOptions,
    executor: Executor,
    slots: int,
    on_batch: Any = None,
) -> ServedModel:
    """Load `version`, warm it up, and wrap it; raises whatever loading or the warm-up raised."""
    started = time.perf_counter()
    model = registry.load(version)
    served = ServedModel(
        name,
        ref,
        model,
        options=options,
        executor=executor,
        slots=slots,
        on_batch=on_batch,
    )
    served.warm_up()
    served.load_seconds = time.perf_counter() - started
    return served
