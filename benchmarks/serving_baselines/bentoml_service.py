"""The BentoML 1.4 services of benchmarks/serving.py (run in BentoML's own environment).

    BENTOML_HOME=... bentoml serve bentoml_service:Classifier --host 127.0.0.1 --port P

The model is the scikit-learn pipeline that `train_baseline.py bentoml` saved in the model store
as `breast_cancer`. Both services take `{"rows": [[30 floats], ...]}` and answer the labels;
`BatchedClassifier` lets BentoML's adaptive batching merge concurrent requests.
"""

from __future__ import annotations

from typing import Any

import bentoml
import numpy as np

MODEL = bentoml.models.BentoModel("breast_cancer:latest")


@bentoml.service(workers=1)
class Classifier:
    model_ref = MODEL

    def __init__(self) -> None:
        self.model: Any = bentoml.sklearn.load_model(self.model_ref)

    @bentoml.api
    def predict(self, rows: list[list[float]]) -> list[int]:
        return [int(label) for label in self.model.predict(np.asarray(rows))]


@bentoml.service(workers=1)
class BatchedClassifier:
    model_ref = MODEL

    def __init__(self) -> None:
        self.model: Any = bentoml.sklearn.load_model(self.model_ref)

    @bentoml.api(batchable=True)
    def predict(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(rows))
