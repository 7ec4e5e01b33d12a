"""The built-in step kinds, each run on tiny real data in a real workspace: what they give
(refs, hashes, metrics), how they fail, and what goes into their cache keys."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fermion import __version__
from fermion.errors import InvalidInputError
from fermion.pipelines.kinds import KINDS, code_hash, file_hashes
from fermion.pipelines.kinds_models import check_train_config
from fermion.pipelines.types import DATASET, MODEL, StepContext, StepOutput, StepSpec
from fermion.workspace import Workspace

FAST = {"seconds": 0.05, "threads": 1}  # optimize: these tests check behaviour, not speed
RULES = "rules:\n  - {column: age, range: {min: 18, max: 100}}\n  - {rows: {min: 10}}\n"
FAILING_RULES = (
    "rules:\n  - {column: age, range: {min: 30}}\n  - {column: city, allowed: [paris]}\n"
    "  - {column: status, not_null: true}\n"
)
RECIPE = 'steps:\n  - filter: "age >= 25"\n'


def run(
    ws: Workspace,
    root: Path,
    kind: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, StepOutput] | None = None,
    *,
    name: str = "step",
) -> StepOutput:
    """Run one step of `kind`; each of `inputs` (by config key) comes from a step `up_<key>`."""
    given = dict(inputs or {})
    spec = StepSpec(
        name=name,
        kind=kind,
        config={**config, **{key: f"up_{key}" for key in given}},
        inputs={key: f"up_{key}" for key in given},
    )
    lines: list[str] = []
    context = StepContext(
        ws, root, spec, given, {f"up_{k}": v for k, v in given.items()}, lines.append
    )
    output = KINDS[kind].run(context)
    assert isinstance(output, StepOutput)
    return output


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(workspace: Workspace, credit_csv: Any) -> Path:
    """The project folder, holding `credit.csv` (300 rows of age, income, city, status)."""
    root = Path.cwd()
    credit_csv(root / "credit.csv")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> Iterator[Any]:
    """A SQLite workspace with `credit:1` split, and model `credit:1` (logistic) from a step."""
    root = tmp_path_factory.mktemp("models")
    credit_csv(root / "credit.csv", rows=400)
    with Workspace.init(root) as ws:
        data = run(ws, root, "data.add", {"source": "credit.csv", "name": "credit"})
        split = run(ws, root, "data.split", {"stratify": "status", "seed": 1}, {DATASET: data})
        model = run(
            ws,
            root,
            "train",
            {"target": "status", "family": "logistic", "params": {"C": 0.5}, "name": "credit"},
            {DATASET: split},
        )
        yield ws, root, split, model


# -- data ------------------------------------------------------------------------------------


def test_data_add_gives_the_version_its_content_hash_and_its_shape(
    workspace: Workspace, project: Path
) -> None:
    output = run(workspace, project, "data.add", {"source": "credit.csv", "name": "credit"})
    version = workspace.datasets.get("credit:1")
    assert output.refs == {DATASET: "credit:1"}
    assert output.hashes == {DATASET: version.content_hash}
    assert output.summary == "credit:1 (300 rows, 4 columns)"
    assert output.metrics == {"rows": 300.0, "columns": 4.0}


def test_adding_the_same_file_twice_gives_the_same_version_and_hash(
    workspace: Workspace, project: Path
) -> None:
    config = {"source": "credit.csv", "name": "credit"}
    first = run(workspace, project, "data.add", config)
    again = run(workspace, project, "data.add", config)
    assert again.refs == first.refs and again.hashes == first.hashes
    kind = KINDS["data.add"]
    assert file_hashes(kind, config, project) == {"source": sha256(project / "credit.csv")}
    (project / "credit.csv").write_text("age,status\n30,good\n40,bad\n")
    assert file_hashes(kind, config, project)["source"] != first.hashes[DATASET]
    changed = run(workspace, project, "data.add", config)
    assert changed.refs == {DATASET: "credit:2"} and changed.hashes != first.hashes


def test_a_missing_file_names_its_key_and_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"rules: no file at .*nope\.yaml"):
        file_hashes(KINDS["data.validate"], {"rules": "nope.yaml"}, tmp_path)
    # rules given inline are in the config itself: no file to hash
    assert file_hashes(KINDS["data.validate"], {"rules": [{"rows": {"min": 1}}]}, tmp_path) == {}
    assert file_hashes(KINDS["data.clean"], {"steps": []}, tmp_path) == {}


def test_data_clean_makes_a_new_version_from_a_recipe_file_or_inline_steps(
    workspace: Workspace, project: Path
) -> None:
    raw = run(workspace, project, "data.add", {"source": "credit.csv", "name": "credit"})
    (project / "recipe.yaml").write_text(RECIPE)
    cleaned = run(workspace, project, "data.clean", {"recipe": "recipe.yaml"}, {DATASET: raw})
    version = workspace.datasets.get("credit:2")
    assert cleaned.refs == {DATASET: "credit:2"}
    assert cleaned.hashes == {DATASET: version.content_hash}
    assert 0 < version.num_rows < 300
    assert cleaned.summary.startswith(f"credit:1 -> credit:2 ({version.num_rows:,} rows")
    inline = run(
        workspace, project, "data.clean", {"steps": [{"filter": "age >= 25"}]}, {DATASET: raw}
    )
    assert inline.refs == cleaned.refs and inline.hashes == cleaned.hashes
    renamed = run(
        workspace,
        project,
        "data.clean",
        {"recipe": "recipe.yaml", "name": "adults"},
        {DATASET: raw},
    )
    assert renamed.refs == {DATASET: "adults:1"}
    with pytest.raises(InvalidInputError, match="needs a recipe file"):
        run(workspace, project, "data.clean", {}, {DATASET: raw})


def test_data_validate_passes_the_dataset_on_with_its_hash(
    workspace: Workspace, project: Path
) -> None:
    raw = run(workspace, project, "data.add", {"source": "credit.csv", "name": "credit"})
    (project / "rules.yaml").write_text(RULES)
    checked = run(workspace, project, "data.validate", {"rules": "rules.yaml"}, {DATASET: raw})
    assert checked.refs == raw.refs and checked.hashes == raw.hashes
    assert checked.metrics["rules_failed"] == 0.0 and checked.metrics["rules_passed"] == 2.0
    inline = run(
        workspace, project, "data.validate", {"rules": [{"rows": {"min": 1}}]}, {DATASET: raw}
    )
    assert inline.metrics["rules_passed"] == 1.0
    literal = run(workspace, project, "data.validate", {"rules": "rules.yaml", DATASET: "credit:1"})
    assert literal.refs == raw.refs and literal.hashes == raw.hashes


def test_a_failing_rule_fails_the_step_naming_every_failed_rule(
    workspace: Workspace, project: Path
) -> None:
    raw = run(workspace, project, "data.add", {"source": "credit.csv", "name": "credit"})
    (project / "rules.yaml").write_text(FAILING_RULES)
    with pytest.raises(InvalidInputError) as failed:
        run(
            workspace,
            project,
            "data.validate",
            {"rules": "rules.yaml"},
            {DATASET: raw},
            name="check",
        )
    message = str(failed.value)
    assert message.startswith("step 'check': credit:1 failed 2 of 3 rules: ")
    assert "'age' in [30, " in message and "'city' is one of ['paris']" in message
    assert "rows fail" in message and "'status' has no nulls" not in message
    (stored,) = workspace.datasets.get("credit:1").validations
    assert not stored.passed  # stored with the version, as `fermion data validate` does


def test_data_split_records_the_split_and_its_hash_follows_the_split(
    workspace: Workspace, project: Path
) -> None:
    raw = run(workspace, project, "data.add", {"source": "credit.csv", "name": "credit"})
    split = run(
        workspace,
        project,
        "data.split",
        {"train": 0.6, "valid": 0.2, "test": 0.2, "stratify": "status"},
        {DATASET: raw},
    )
    assert split.refs == raw.refs
    (record,) = workspace.datasets.get("credit:1").splits
    counts = {part: record.counts[part] for part in ("train", "valid", "test")}
    assert split.metrics == {
        "rows": 300.0,
        "columns": 4.0,
        **{f"{part}_rows": float(n) for part, n in counts.items()},
    }
    assert sum(counts.values()) == 300 and counts["train"] == 180
    assert split.summary == (
        f"credit:1 split: train 180, valid {counts['valid']}, test {counts['test']}"
    )
    assert record.params["stratify"] == "status"
    assert split.hashes[DATASET] != raw.hashes[DATASET]
    again = run(
        workspace,
        project,
        "data.split",
        {"train": 0.6, "valid": 0.2, "test": 0.2, "stratify": "status"},
        {DATASET: raw},
    )
    assert again.hashes == split.hashes
    reseeded = run(workspace, project, "data.split", {"seed": 3}, {DATASET: raw})
    assert reseeded.hashes != split.hashes
    # the first split is now older than the newest one, which is what training would read
    with pytest.raises(InvalidInputError, match="training reads the newest split"):
        run(
            workspace,
            project,
            "data.split",
            {"train": 0.6, "valid": 0.2, "test": 0.2, "stratify": "status"},
            {DATASET: raw},
        )


# -- models ----------------------------------------------------------------------------------


def test_train_registers_the_model_with_its_hash_and_metrics(trained: Any) -> None:
    ws, _, split, model = trained
    version = ws.models.get("credit:1")
    assert model.refs == {MODEL: "credit:1"}
    assert model.hashes == {MODEL: version.content_hash}
    for name, value in version.metrics.items():
        assert model.metrics[name] == value
    assert "roc_auc" in model.metrics and "valid_roc_auc" in model.metrics
    assert model.summary.startswith("credit:1 (logistic, test roc_auc ")
    assert ws.models.manifest(version)["params"]["C"] == 0.5
    assert ws.models.manifest(version)["data"] == split.refs[DATASET]


def test_a_bad_config_value_names_the_step_and_the_key(trained: Any) -> None:
    ws, root, split, _ = trained
    with pytest.raises(InvalidInputError, match="step 'fit': params must be a mapping"):
        run(ws, root, "train", {"target": "status", "params": [1]}, {DATASET: split}, name="fit")
    with pytest.raises(InvalidInputError, match="step 'fit': task must be binary"):
        run(ws, root, "train", {"target": "status", "task": "big"}, {DATASET: split}, name="fit")


CENTROID_MODULE = """\
import numpy as np


class NearestCentroid:
    def fit(self, X, y):
        self.centroids = np.stack([X[y == k].mean(axis=0) for k in np.unique(y)])
        return self

    def predict_proba(self, X):
        distance = ((X[:, None, :] - self.centroids[None]) ** 2).sum(axis=-1)
        weights = np.exp(-(distance - distance.min(axis=1, keepdims=True)))
        return weights / weights.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


def fit(data, run):
    run.log_param("kind", "centroid")
    return NearestCentroid().fit(data.X_train, data.y_train)
"""


def test_train_runs_the_projects_own_training_function(trained: Any) -> None:
    ws, root, split, _ = trained
    (root / "centroid_steps.py").write_text(CENTROID_MODULE)
    config = {"target": "status", "function": "centroid_steps:fit", "name": "centroid"}
    output = run(ws, root, "train", config, {DATASET: split}, name="fit")
    version = ws.models.get("centroid:1")
    assert output.refs == {MODEL: "centroid:1"} and version.flavor == "python"
    assert output.summary.startswith("centroid:1 (custom:fit, test roc_auc ")
    assert 0.5 < output.metrics["roc_auc"] <= 1.0

    spec = StepSpec(name="fit", kind="train", config=config)
    before = code_hash(spec, root)
    assert before == f"fermion {__version__}, {sha256(root / 'centroid_steps.py')}"
    (root / "centroid_steps.py").write_text(CENTROID_MODULE + "\n# edited\n")
    assert code_hash(spec, root) != before  # an edited function re-trains


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"family": "logistic", "function": "m:fit"}, "family .* or function .*, not both"),
        ({"inputs": "frame"}, "inputs is for a training function"),
        ({"function": "m:fit", "inputs": "rows"}, "inputs must be matrix or frame or pandas"),
        ({"function": "m.fit"}, r"must be 'package\.module:function'"),
    ],
)
def test_a_train_steps_function_config_is_checked_when_the_file_loads(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_train_config("fit", {"target": "status", **config}, {})


def test_tune_registers_the_best_model_of_a_fresh_study(trained: Any) -> None:
    ws, root, split, _ = trained
    config = {"target": "status", "family": "logistic", "trials": 2, "folds": 2, "name": "tuned"}
    tuned = run(ws, root, "tune", config, {DATASET: split}, name="search")
    version = ws.models.get("tuned:1")
    assert tuned.refs == {MODEL: "tuned:1"}
    assert tuned.hashes == {MODEL: version.content_hash}
    assert tuned.metrics["roc_auc"] == version.metrics["roc_auc"]
    assert tuned.metrics["trials_complete"] == 2.0 and "cv_roc_auc" in tuned.metrics
    assert tuned.summary.startswith("tuned:1 (logistic, cv roc_auc ")
    assert tuned.summary.endswith(", study credit-status-logistic-search)")
    # run again (say its code changed): the study starts over rather than being refused or
    # resumed with its old trials
    again = run(ws, root, "tune", config, {DATASET: split}, name="search")
    assert again.refs == {MODEL: "tuned:2"} and again.metrics["trials_complete"] == 2.0


def test_evaluate_defaults_to_the_test_part_of_the_training_data(trained: Any) -> None:
    ws, root, split, model = trained
    output = run(ws, root, "evaluate", {}, {MODEL: model})
    assert output.refs == model.refs and output.hashes == model.hashes
    assert output.summary.startswith("credit:1 on credit:1 (test, 60 rows): roc_auc ")
    assert output.metrics["roc_auc"] == pytest.approx(model.metrics["roc_auc"])
    everything = run(ws, root, "evaluate", {}, {MODEL: model, DATASET: split})
    assert "(all, 400 rows)" in everything.summary
    literal = run(ws, root, "evaluate", {MODEL: "credit:1", DATASET: "credit:1", "part": "valid"})
    assert literal.refs == model.refs and "(valid, 60 rows)" in literal.summary


def test_optimize_gives_the_fastest_registered_variant_with_its_figures(trained: Any) -> None:
    ws, root, _, model = trained
    output = run(ws, root, "optimize", {**FAST, "quantize": "none"}, {MODEL: model})
    onnx = next(v for v in ws.models.versions("credit") if v.flavor == "onnx")
    assert output.refs == {MODEL: onnx.ref} and output.hashes == {MODEL: onnx.content_hash}
    assert output.metrics["variants_passed"] == 1.0 and output.metrics["variants_dropped"] == 0.0
    assert output.metrics["metric_drop"] <= 0.01 and "roc_auc" in output.metrics
    for figure in ("p99_ms", "rows_per_s_32", "size_bytes", "p99_speedup"):
        assert output.metrics[figure] > 0
    assert output.summary.endswith(f"from {model.refs[MODEL]}")
    measured = run(ws, root, "optimize", {**FAST, "no_register": True}, {MODEL: model})
    assert measured.refs == model.refs and measured.metrics["variants_passed"] == 1.0
    assert "none registered" in measured.summary


def test_optimize_keeps_the_source_when_no_variant_passes_unless_one_is_required(
    trained: Any,
) -> None:
    def fit(data: Any, run: Any) -> Any:
        import lightgbm

        # a model of no built-in flavor: saved as `python`, which has no ONNX export
        return lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(data.X_train, data.y_train)

    from fermion.training.trainer import train

    ws, root, split, _ = trained
    version = train(ws, split.refs[DATASET], "status", fit, name="custom").model
    assert version is not None and version.flavor == "python"
    given = {MODEL: StepOutput(refs={MODEL: version.ref}, hashes={MODEL: version.content_hash})}
    kept = run(ws, root, "optimize", {**FAST, "auto": True}, given)
    assert kept.refs == {MODEL: version.ref} and kept.hashes == {MODEL: version.content_hash}
    assert kept.metrics["variants_passed"] == 0.0 and kept.metrics["p99_ms"] > 0
    assert "none passed the gate" in kept.summary
    with pytest.raises(InvalidInputError, match="no variant of custom:1 passed the gate: onnx: "):
        run(ws, root, "optimize", {**FAST, "auto": True, "require_variant": True}, given)


@pytest.mark.slow
def test_a_variant_dropped_by_the_gate_does_not_fail_the_step(trained: Any) -> None:
    ws, root, split, _ = trained
    network = run(
        ws,
        root,
        "train",
        {"target": "status", "family": "torch_mlp", "params": {"epochs": 5}, "name": "mlp"},
        {DATASET: split},
    )
    config = {
        **FAST,
        "quantize": "none",
        "prune": 0.95,
        "prune_mode": "unstructured",
        "max_drop": 0.0,
        "require_variant": True,
    }
    output = run(ws, root, "optimize", config, {MODEL: network})
    assert output.metrics["variants_dropped"] == 1.0 and output.metrics["variants_passed"] == 1.0
    (onnx,) = [v for v in ws.models.versions("mlp") if v.flavor == "onnx"]
    assert output.refs == {MODEL: onnx.ref}


def test_promote_moves_the_alias_on_every_run_as_fermion_run(trained: Any) -> None:
    ws, root, _, model = trained
    assert not KINDS["promote"].cacheable
    output = run(ws, root, "promote", {"alias": "production"}, {MODEL: model})
    assert output.refs == model.refs and output.hashes == model.hashes
    assert output.summary == "credit@production -> credit:1 (new alias)"
    assert ws.models.get("credit@production").ref == "credit:1"
    again = run(ws, root, "promote", {"alias": "production", MODEL: "credit:1"})
    assert again.summary == "credit@production -> credit:1 (already there)"
    assert [event.actor for event in ws.models.history("credit")][-2:] == ["fermion run"] * 2


# -- python ----------------------------------------------------------------------------------

STEPS_MODULE = """\
from fermion.pipelines.types import StepOutput


def count_rows(context, minimum=0):
    dataset = context.workspace.datasets.get(context.ref("dataset", "dataset"))
    return {"rows_seen": dataset.num_rows, "enough": float(dataset.num_rows >= minimum)}


def nothing(context):
    return None


def made(context):
    return StepOutput(refs={"dataset": "made:1"}, summary="made it")


def wrong(context):
    return "text"
"""


def test_python_calls_a_project_function_and_passes_its_inputs_on(
    workspace: Workspace, project: Path
) -> None:
    (project / "pipeline_steps.py").write_text(STEPS_MODULE)
    raw = run(workspace, project, "data.add", {"source": "credit.csv", "name": "credit"})

    def call(function: str, **config: Any) -> StepOutput:
        config = {"function": f"pipeline_steps:{function}", **config}
        return run(workspace, project, "python", config, {DATASET: raw}, name="custom")

    counted = call("count_rows", args={"minimum": 500})
    assert counted.metrics == {"rows_seen": 300.0, "enough": 0.0}
    assert counted.refs == raw.refs and counted.hashes == raw.hashes
    assert call("nothing").refs == raw.refs
    assert call("made") == StepOutput(refs={DATASET: "made:1"}, summary="made it")
    with pytest.raises(InvalidInputError, match="returned a str; return None, a StepOutput"):
        call("wrong")
    with pytest.raises(InvalidInputError, match="has no function 'absent'"):
        call("absent")
    with pytest.raises(InvalidInputError, match="cannot import no_such_module"):
        run(workspace, project, "python", {"function": "no_such_module:f"})
    with pytest.raises(InvalidInputError, match=r"must be 'package\.module:function'"):
        run(workspace, project, "python", {"function": "pipeline_steps.count_rows"})


def test_python_runs_the_code_of_its_own_project(workspace: Workspace, tmp_path: Path) -> None:
    """Two projects with a module of the same name: each step runs its own project's code."""
    for number in (1, 2):
        folder = tmp_path / f"project{number}"
        (folder / "shared_steps").mkdir(parents=True)
        (folder / "shared_steps" / "__init__.py").write_text("")
        (folder / "shared_steps" / "score.py").write_text(
            f"def score(context):\n    return {{'project': {number}}}\n"
        )
        output = run(workspace, folder, "python", {"function": "shared_steps.score:score"})
        assert output.metrics == {"project": float(number)}


def test_code_hash_follows_a_python_steps_module_source(tmp_path: Path) -> None:
    module = tmp_path / "my_steps.py"
    module.write_text("def f(context):\n    return None\n")
    spec = StepSpec(name="custom", kind="python", config={"function": "my_steps:f"})
    before = code_hash(spec, tmp_path)
    assert before == sha256(module)
    assert code_hash(spec, tmp_path) == before
    module.write_text("def f(context):\n    return {'x': 1.0}\n")
    assert code_hash(spec, tmp_path) != before
    installed = StepSpec(
        name="lib", kind="python", config={"function": "fermion.pipelines.types:StepOutput"}
    )
    import fermion.pipelines.types as types_module

    assert code_hash(installed, tmp_path) == sha256(Path(types_module.__file__))
    builtin = StepSpec(name="fit", kind="train", config={"target": "status"})
    assert code_hash(builtin, tmp_path) == f"fermion {__version__}"


def test_every_kind_declares_keys_that_exist() -> None:
    for name, kind in KINDS.items():
        assert kind.name == name and kind.description
        assert set(kind.file_keys) <= kind.keys
        assert not set(kind.required) & set(kind.optional)
