"""Search spaces: built-in ones per family, space files, sampling, warm starts, fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from fermion.errors import InvalidInputError
from fermion.training.families import FAMILIES, Task
from fermion.tuning.space import Dimension, SearchSpace, default_space, load_space

FAMILY_TASKS = [(name, task) for name, family in FAMILIES.items() for task in sorted(family.tasks)]


def _study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))


def _space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("family", "task"), FAMILY_TASKS)
def test_default_space_samples_params_the_family_accepts(family: str, task: Task) -> None:
    model = FAMILIES[family]
    space = default_space(family, task)
    accepted = {spec.name for spec in model.params(task)}
    assert space.dimensions
    assert {dim.name for dim in space.dimensions} <= accepted
    assert not {"num_boost_round", "epochs"} & {dim.name for dim in space.dimensions}

    fixed_trial = optuna.trial.FixedTrial(space.defaults())
    model.coerce_params(task, space.suggest(fixed_trial))
    study = _study()
    for _ in range(5):
        trial = study.ask()
        model.coerce_params(task, space.suggest(trial))
        study.tell(trial, 0.0)


def test_conditional_param_is_sampled_only_when_its_condition_holds() -> None:
    space = default_space("lightgbm", "binary")
    study = _study(seed=3)
    seen = set()
    for _ in range(30):
        trial = study.ask()
        params = space.suggest(trial)
        bagging = params["bagging_freq"] in (1, 5)
        assert ("bagging_fraction" in params) == bagging
        assert ("bagging_fraction" in trial.params) == bagging
        seen.add(bagging)
        study.tell(trial, 0.0)
    assert seen == {True, False}


@pytest.mark.parametrize(("family", "task"), FAMILY_TASKS)
def test_defaults_enqueued_as_the_first_trial_give_the_family_defaults(
    family: str, task: Task
) -> None:
    model = FAMILIES[family]
    space = default_space(family, task)
    study = _study()
    study.enqueue_trial(space.defaults())
    got = model.coerce_params(task, space.suggest(study.ask()))
    expected = model.default_params(task)
    lows = {dim.name: dim.low for dim in space.dimensions}
    for name, value in got.items():
        # a default below a log range (a zero penalty) starts at the range's low end instead
        assert value == expected[name] or (expected[name] == 0.0 and value == lows[name]), name


def test_defaults_move_onto_a_stepped_range_and_skip_a_missing_choice() -> None:
    space = SearchSpace(
        "random_forest",
        "binary",
        [
            Dimension("n_estimators", "int", low=120, high=520, step=100),
            Dimension("max_depth", "categorical", choices=(4, 8)),
        ],
    )
    assert space.defaults() == {"n_estimators": 220}
    study = _study()
    study.enqueue_trial(space.defaults())
    params = space.suggest(study.ask())
    assert params["n_estimators"] == 220
    assert params["max_depth"] in (4, 8)


def test_space_file_overrides_extends_fixes_and_removes(tmp_path: Path) -> None:
    path = _space_file(
        tmp_path,
        """
params:
  num_leaves: {type: int, low: 16, high: 512, log: true}
  max_depth: {type: int, low: 3, high: 12}
  num_boost_round: 300
  lambda_l1: null
""",
    )
    space = load_space(path, "lightgbm", "binary")
    dims = {dim.name: dim for dim in space.dimensions}
    assert (dims["num_leaves"].low, dims["num_leaves"].high, dims["num_leaves"].log) == (
        16,
        512,
        True,
    )
    assert dims["max_depth"].kind == "int"
    assert "lambda_l1" not in dims
    assert "learning_rate" in dims
    assert space.fixed == {"num_boost_round": 300}
    assert "max_depth" not in space.defaults()  # its default, None, lies outside the range
    study = _study()
    study.enqueue_trial(space.defaults())
    params = space.suggest(study.ask())
    assert params["num_boost_round"] == 300
    assert 3 <= params["max_depth"] <= 12  # type: ignore[operator]
    assert "lambda_l1" not in params
    FAMILIES["lightgbm"].coerce_params("binary", params)


def test_space_file_replace_searches_only_the_listed_params(tmp_path: Path) -> None:
    path = _space_file(
        tmp_path,
        "params:\n  eta: {type: float, low: 0.05, high: 0.2}\n  max_depth: 4\nreplace: true\n",
    )
    space = load_space(path, "xgboost", "regression")
    assert [dim.name for dim in space.dimensions] == ["eta"]
    assert space.fixed == {"max_depth": 4}


def test_empty_space_file_gives_the_default_space(tmp_path: Path) -> None:
    path = _space_file(tmp_path, "")
    assert load_space(path, "hist_gb", "binary") == default_space("hist_gb", "binary")


def test_condition_on_a_fixed_param_is_settled(tmp_path: Path) -> None:
    off = load_space(_space_file(tmp_path, "params: {bagging_freq: 0}"), "lightgbm", "binary")
    assert "bagging_fraction" not in {dim.name for dim in off.dimensions}
    on = load_space(_space_file(tmp_path, "params: {bagging_freq: 5}"), "lightgbm", "binary")
    (fraction,) = [dim for dim in on.dimensions if dim.name == "bagging_fraction"]
    assert fraction.when is None


BAD_FILES = [
    ("params: [", "not valid YAML"),
    ("other: 1", "unknown key 'other'"),
    ("replace: maybe", "replace must be true or false"),
    ("params: {bogus: 1}", "unknown param 'bogus' for model family 'lightgbm'"),
    ("params: {num_leaves: {type: integer, low: 2, high: 8}}", "unknown type 'integer'"),
    ("params: {num_leaves: {low: 2, high: 8}}", "param 'num_leaves' needs a type"),
    ("params: {num_leaves: {type: int, lo: 2, high: 8}}", "unknown key 'lo'"),
    ("params: {num_leaves: {type: int, low: 5, high: 5}}", "'num_leaves': empty range [5, 5]"),
    ("params: {num_leaves: {type: int, low: abc, high: 8}}", "low must be an integer, got 'abc'"),
    ("params: {num_leaves: {type: int, low: 2.5, high: 8}}", "low must be an integer"),
    ("params: {num_leaves: {type: float, low: 2, high: 8}}", "param 'num_leaves' takes int"),
    ("params: {lambda_l1: {type: float, low: 0, high: 1, log: true}}", "needs low > 0"),
    ("params: {num_leaves: {type: int, low: 2, high: 9, step: 2}}", "step 2 does not divide"),
    ("params: {learning_rate: {type: float, low: 0.1, high: 1, log: true, step: 0.1}}", "step"),
    ("params: {bagging_freq: {type: categorical, choices: []}}", "empty choices"),
    ("params: {feature_fraction: {type: float, low: 0.5, high: 1.5}}", "must be <= 1"),
    ("params: {num_leaves: -3}", "param 'num_leaves' must be >= 2"),
    ("params: {learning_rate: fast}", "param 'learning_rate' must be a number"),
    (
        "params: {bagging_fraction: {type: float, low: 0.5, high: 1, when: {max_depth: [3]}}}",
        "condition names 'max_depth', which is not in the search space",
    ),
    ("params: {bagging_freq: null}", "condition names 'bagging_freq'"),
    (
        "params: {bagging_freq: {type: categorical, choices: [0, 1], when: {bagging_fraction: 1}}}",
        "form a cycle",
    ),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_bad_space_file_is_refused_naming_file_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = _space_file(tmp_path, text)
    with pytest.raises(InvalidInputError) as caught:
        load_space(path, "lightgbm", "binary")
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_unknown_param_error_lists_the_accepted_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"accepted: .*num_leaves"):
        load_space(_space_file(tmp_path, "params: {bogus: 1}"), "lightgbm", "binary")


def test_bad_choice_for_the_family_is_refused(tmp_path: Path) -> None:
    path = _space_file(tmp_path, "params: {hidden: {type: categorical, choices: [wide]}}")
    with pytest.raises(InvalidInputError, match="param 'hidden'"):
        load_space(path, "torch_mlp", "binary")


def test_missing_file_and_unsupported_task_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_space(tmp_path / "absent.yaml", "lightgbm", "binary")
    with pytest.raises(InvalidInputError, match="does not support task 'binary'"):
        load_space(_space_file(tmp_path, ""), "linear", "binary")


def test_dimension_validation_messages() -> None:
    with pytest.raises(InvalidInputError, match=r"^param 'x': empty range \[5, 5\]$"):
        Dimension("x", "int", low=5, high=5)
    with pytest.raises(InvalidInputError, match="param 'x': a log range needs low > 0"):
        Dimension("x", "float", low=-1.0, high=1.0, log=True)
    with pytest.raises(InvalidInputError, match="param 'x': empty choices"):
        Dimension("x", "categorical", choices=())
    with pytest.raises(InvalidInputError, match="param 'x': its condition names the param"):
        Dimension("x", "categorical", choices=(1,), when={"x": (1,)})


def test_fingerprint_follows_the_space_and_not_the_order() -> None:
    dims = [
        Dimension("eta", "float", low=0.01, high=0.3, log=True),
        Dimension("max_depth", "int", low=3, high=10),
    ]
    base = SearchSpace("xgboost", "binary", dims)
    assert base.fingerprint() == SearchSpace("xgboost", "binary", dims[::-1]).fingerprint()
    assert default_space("xgboost", "binary").fingerprint() == (
        default_space("xgboost", "binary").fingerprint()
    )
    changed = [
        SearchSpace("xgboost", "binary", [dims[0], Dimension("max_depth", "int", low=3, high=9)]),
        SearchSpace("xgboost", "binary", [Dimension("eta", "float", low=0.01, high=0.3), dims[1]]),
        SearchSpace("xgboost", "binary", dims, {"num_boost_round": 200}),
        SearchSpace("xgboost", "regression", dims),
        SearchSpace("xgboost", "binary", dims[:1]),
    ]
    prints = {space.fingerprint() for space in changed}
    assert len(prints) == len(changed)
    assert base.fingerprint() not in prints


def test_to_dict_round_trips_through_json() -> None:
    space = SearchSpace(
        "random_forest",
        "multiclass",
        [
            Dimension("max_depth", "categorical", choices=(None, 4, 8)),
            Dimension("n_estimators", "int", low=100, high=500, step=50),
            Dimension("min_samples_leaf", "int", low=1, high=20, when={"max_depth": (4, 8)}),
        ],
        {"max_features": "log2"},
    )
    data = json.loads(json.dumps(space.to_dict()))
    again = SearchSpace.from_dict(data)
    assert again == space
    assert again.fingerprint() == space.fingerprint()
    assert again.dimensions == space.dimensions


def test_from_dict_refuses_malformed_data() -> None:
    with pytest.raises(InvalidInputError, match="needs exactly the keys"):
        SearchSpace.from_dict({"family": "linear"})
    data = default_space("linear", "regression").to_dict()
    with pytest.raises(InvalidInputError, match="unknown task"):
        SearchSpace.from_dict({**data, "task": "ranking"})


def test_describe_gives_one_row_per_param() -> None:
    space = SearchSpace(
        "lightgbm",
        "binary",
        default_space("lightgbm", "binary").dimensions,
        {"num_boost_round": 300},
    )
    rows = {row["name"]: row for row in space.describe()}
    assert rows["learning_rate"] == {
        "name": "learning_rate",
        "kind": "float",
        "values": "0.01 .. 0.3",
        "log": True,
        "condition": "",
    }
    assert rows["bagging_freq"]["values"] == "0, 1, 5"
    assert rows["bagging_fraction"]["condition"] == "bagging_freq in [1, 5]"
    assert rows["num_boost_round"]["kind"] == "fixed"


def test_importing_the_space_module_does_not_import_optuna() -> None:
    code = "import sys, fermion.tuning.space; print('optuna' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
