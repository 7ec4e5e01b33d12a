"""Trains the benchmark's model in a baseline's own environment and saves it in that tool's
format (run by benchmarks/serving.py with MLflow's or BentoML's interpreter):

    python train_baseline.py mlflow FOLDER     # mlflow.sklearn.save_model(FOLDER/model)
    python train_baseline.py bentoml           # bentoml.sklearn.save_model, in $BENTOML_HOME

The model: StandardScaler + LogisticRegression(max_iter=5000) on scikit-learn's breast-cancer
data (569 rows, 30 float features), the same estimator Fermion's `logistic` family fits. Prints
the label predicted for the first row, which the benchmark checks each server answers.
"""

from __future__ import annotations

import sys
from pathlib import Path


def fit() -> object:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(data.data, data.target)
    print(int(model.predict(data.data[:1])[0]))
    return model


def main() -> None:
    tool = sys.argv[1]
    model = fit()
    if tool == "mlflow":
        import mlflow.sklearn

        mlflow.sklearn.save_model(model, str(Path(sys.argv[2]) / "model"))
    elif tool == "bentoml":
        import bentoml

        bentoml.sklearn.save_model("breast_cancer", model)
    else:
        raise SystemExit(f"unknown tool {tool!r}")


if __name__ == "__main__":
    main()
