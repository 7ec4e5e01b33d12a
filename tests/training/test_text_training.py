"""Text columns: an intent classifier for customer-service messages in one command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.workspace import Workspace

MESSAGES = Path(__file__).resolve().parents[2] / "examples" / "intents" / "messages.csv"


def test_fermion_train_embeds_a_text_column_and_serves_raw_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    added = runner.invoke(app, ["data", "add", str(MESSAGES), "--name", "intents"])
    assert added.exit_code == 0, added.output
    trained = runner.invoke(
        app, ["train", "--data", "intents", "--target", "intent", "--model", "logistic", "--json"]
    )
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout)["result"]
    assert result["task"] == "multiclass"
    assert result["metrics"]["accuracy"] >= 0.8
    with Workspace.open(tmp_path) as ws:
        model = ws.models.load("intents")
        assert model.manifest["preprocessor"]["columns"][0]["role"] == "text"
        predicted = model.predict(
            [
                {"message": "somebody charged my card for things I never bought"},
                {"message": "when does your office open on saturday"},
            ]
        )
    assert list(predicted) == ["report_fraud", "opening_hours"]
