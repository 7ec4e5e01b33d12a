"""The pipeline file: what loading `fermion.yaml` gives, every way it is refused before a step
runs, and the order steps run in."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fermion.errors import InvalidInputError
from fermion.pipelines.kinds import KINDS, StepKind
from fermion.pipelines.spec import find_project, layers, load_project, pipeline, select
from fermion.pipelines.types import PipelineSpec, ProjectSpec, StepContext, StepOutput, StepSpec


def _never_run(context: StepContext) -> StepOutput:
    raise AssertionError("loading a pipeline file must not run a step")


DATASET = {"dataset": "dataset"}
TEST_KINDS = {
    "data.add": StepKind("data.add", _never_run, required=("source", "name")),
    "data.clean": StepKind("data.clean", _never_run, input_keys=DATASET, required=("recipe",)),
    "data.validate": StepKind("data.validate", _never_run, input_keys=DATASET, optional=("rules",)),
    "data.split": StepKind("data.split", _never_run, input_keys=DATASET, optional=("test_size",)),
    "train": StepKind("train", _never_run, input_keys=DATASET, optional=("params",)),
    "deploy": StepKind("deploy", _never_run, input_keys={"model": "model"}, optional=("model",)),
}

CREDIT = """\
pipelines:
  credit:
    steps:
      ingest:
        kind: data.add
        source: data/credit.csv
        name: credit
      clean:
        kind: data.clean
        dataset: ingest
        recipe: clean.yaml
      validate:
        kind: data.validate
        dataset: clean
      split:
        kind: data.split
        dataset: clean
        needs: [validate]
      train:
        kind: train
        dataset: credit:3
        needs: split
  other:
    steps:
      retrain:
        kind: train
        dataset: clean
"""


def _write(folder: Path, text: str) -> Path:
    path = folder / "fermion.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _load(folder: Path, text: str) -> ProjectSpec:
    return load_project(_write(folder, text), TEST_KINDS)


def _refusal(folder: Path, text: str) -> str:
    with pytest.raises(InvalidInputError) as caught:
        _load(folder, text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_steps_are_read_with_their_config_dependencies_and_place(tmp_path: Path) -> None:
    project = _load(tmp_path, CREDIT)
    assert list(project.pipelines) == ["credit", "other"]
    steps = project.pipelines["credit"].steps
    assert list(steps) == ["ingest", "clean", "validate", "split", "train"]
    assert steps["ingest"] == StepSpec(
        name="ingest",
        kind="data.add",
        config={"source": "data/credit.csv", "name": "credit"},
        line=4,
        column=7,
    )
    assert steps["clean"].inputs == {"dataset": "ingest"}
    assert steps["clean"].needs == ("ingest",)
    assert steps["split"].config == {"dataset": "clean"}
    assert steps["split"].needs == ("clean", "validate")
    assert (steps["split"].line, steps["split"].column) == (15, 7)


def test_a_value_naming_no_step_of_the_pipeline_is_a_literal_ref(tmp_path: Path) -> None:
    project = _load(tmp_path, CREDIT)
    train = project.pipelines["credit"].steps["train"]
    assert train.inputs == {}
    assert train.needs == ("split",)
    assert train.config["dataset"] == "credit:3"
    # `clean` is a step of the other pipeline only.
    retrain = project.pipelines["other"].steps["retrain"]
    assert (retrain.inputs, retrain.needs) == ({}, ())


def test_needs_are_deduplicated_in_the_order_steps_are_declared(tmp_path: Path) -> None:
    project = _load(
        tmp_path,
        """\
        steps:
          a: {kind: data.add, source: a.csv, name: a}
          b: {kind: data.add, source: b.csv, name: b}
          c: {kind: train, dataset: a, needs: [b, a, b]}
        """,
    )
    assert project.pipelines["default"].steps["c"].needs == ("a", "b")


def test_top_level_steps_are_one_pipeline_named_default(tmp_path: Path) -> None:
    project = _load(tmp_path, "steps:\n  a: {kind: data.add, source: a.csv, name: a}\n")
    assert list(project.pipelines) == ["default"]
    assert project.root == tmp_path


def test_the_first_pipeline_is_the_default_and_others_are_found_by_name(tmp_path: Path) -> None:
    project = _load(tmp_path, CREDIT)
    assert pipeline(project).name == "credit"
    assert pipeline(project, None).name == "credit"
    assert pipeline(project, "other").name == "other"
    with pytest.raises(InvalidInputError, match=r"no pipeline 'nope' \(it has: credit, other\)"):
        pipeline(project, "nope")


def test_kinds_default_to_the_shipped_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(KINDS, "only.here", StepKind("only.here", _never_run))
    project = load_project(_write(tmp_path, "steps:\n  a: {kind: only.here}\n"))
    assert project.pipelines["default"].steps["a"].kind == "only.here"


def test_find_project_looks_in_the_folder_then_upwards(tmp_path: Path) -> None:
    path = _write(tmp_path, CREDIT)
    deep = tmp_path / "src" / "deep"
    deep.mkdir(parents=True)
    assert find_project(tmp_path) == path.resolve()
    assert find_project(deep) == path.resolve()


def test_find_project_names_the_folder_when_there_is_none(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"no fermion\.yaml in .*empty"):
        find_project(tmp_path / "empty")


def test_layers_group_steps_that_can_run_together(tmp_path: Path) -> None:
    credit = pipeline(_load(tmp_path, CREDIT))
    assert layers(credit) == [["ingest"], ["clean"], ["validate"], ["split"], ["train"]]
    diamond = _load(
        tmp_path,
        """\
        steps:
          late: {kind: train, dataset: b, needs: c}
          c: {kind: data.split, dataset: a}
          b: {kind: data.clean, dataset: a, recipe: r.yaml}
          a: {kind: data.add, source: a.csv, name: a}
          free: {kind: data.add, source: f.csv, name: f}
        """,
    )
    assert layers(pipeline(diamond)) == [["a", "free"], ["c", "b"], ["late"]]


def test_select_all_only_or_from_a_step_onwards(tmp_path: Path) -> None:
    credit = pipeline(_load(tmp_path, CREDIT))
    assert select(credit) == ["ingest", "clean", "validate", "split", "train"]
    assert select(credit, only=["train", "clean"]) == ["clean", "train"]
    assert select(credit, start="validate") == ["validate", "split", "train"]
    assert select(credit, start="clean") == ["clean", "validate", "split", "train"]


def test_select_refuses_unknown_steps_listing_the_pipeline_s_steps(tmp_path: Path) -> None:
    credit = pipeline(_load(tmp_path, CREDIT))
    listing = r"\(it has: ingest, clean, validate, split, train\)"
    with pytest.raises(InvalidInputError, match=r"no step 'tran' " + listing):
        select(credit, only=["train", "tran"])
    with pytest.raises(InvalidInputError, match=r"no step 'x' " + listing):
        select(credit, start="x")
    with pytest.raises(InvalidInputError, match="either"):
        select(credit, only=["train"], start="clean")


def test_layers_refuse_a_cycle_in_a_pipeline_built_by_hand() -> None:
    def step(name: str, *needs: str) -> StepSpec:
        return StepSpec(name=name, kind="train", config={}, needs=needs)

    looped = PipelineSpec("p", {"a": step("a", "b"), "b": step("b", "a"), "c": step("c", "a")})
    with pytest.raises(InvalidInputError, match=r"pipeline 'p': steps in a cycle: a -> b -> a"):
        layers(looped)
    dangling = PipelineSpec("p", {"a": step("a", "ghost")})
    with pytest.raises(InvalidInputError, match="unknown step 'ghost'"):
        layers(dangling)


STEP_A = "  a: {kind: data.add, source: a.csv, name: a}\n"

REFUSALS = {
    "syntax error": (
        "steps:\n  a:\n    kind: data.add\n    source: a: b\n",
        "fermion.yaml:4:14: mapping values are not allowed here",
    ),
    "duplicate step": (
        "steps:\n" + STEP_A + "  b: {kind: data.add, source: b.csv, name: b}\n" + STEP_A,
        "fermion.yaml:4:3: duplicate key 'a' (first at line 2)",
    ),
    "duplicate config key": (
        "steps:\n  a:\n    kind: data.add\n    source: a.csv\n    source: b.csv\n",
        "fermion.yaml:5:5: duplicate key 'source' (first at line 4)",
    ),
    "empty file": ("# nothing yet\n", "fermion.yaml: the file is empty"),
    "not a mapping": ("- a\n- b\n", "fermion.yaml: must be a mapping with `pipelines:` or "),
    "no steps": ("steps: {}\n", "fermion.yaml:1:1: pipeline 'default' has no steps"),
    "empty steps": ("steps:\n", "fermion.yaml:1:1: pipeline 'default' has no steps"),
    "no pipelines": ("pipelines: {}\n", "fermion.yaml:1:1: `pipelines:` must map"),
    "pipeline without steps": (
        "pipelines:\n  p:\n    steps: {}\n",
        "fermion.yaml:3:5: pipeline 'p' has no steps",
    ),
    "pipeline not a mapping": (
        "pipelines:\n  p: [a, b]\n",
        "fermion.yaml:2:3: pipeline 'p' must be a mapping with `steps:`, not a list",
    ),
    "unknown pipeline key": (
        "pipelines:\n  p:\n    stpes: {}\n",
        "fermion.yaml:3:5: pipeline 'p' has unknown key 'stpes' (expected `steps:`)",
    ),
    "unknown top-level key": (
        "steps:\n" + STEP_A + "version: 2\n",
        "fermion.yaml:3:1: unknown top-level key 'version'",
    ),
    "pipelines and steps": (
        "pipelines: {}\nsteps: {}\n",
        "fermion.yaml:2:1: give either `pipelines:` or `steps:`, not both",
    ),
    "step not a mapping": (
        "steps:\n  a: data.add\n",
        "fermion.yaml:2:3: step 'a' must be a mapping with a `kind:`, not text",
    ),
    "step name not text": (
        "steps:\n  12: {kind: data.add}\n",
        "fermion.yaml:2:3: a step name must be text, not 12",
    ),
    "no kind": ("steps:\n  a: {source: a.csv}\n", "fermion.yaml:2:3: step 'a' has no `kind:`"),
    "unknown kind": (
        "steps:\n  a:\n    kind: data.ad\n",
        "fermion.yaml:3:5: step 'a' has unknown kind 'data.ad' (known: data.add, data.clean, "
        "data.split, data.validate, deploy, train)",
    ),
    "unknown config key": (
        "steps:\n" + STEP_A + "  b: {kind: data.split, dataset: a, size: 0.2}\n",
        "fermion.yaml:3:37: step 'b': data.split does not accept 'size' "
        "(it accepts: dataset, test_size, needs)",
    ),
    "missing required key": (
        "steps:\n  a: {kind: data.add, source: a.csv}\n",
        "fermion.yaml:2:3: step 'a': data.add needs `name:`",
    ),
    "missing input key": (
        "steps:\n  a: {kind: train}\n",
        "fermion.yaml:2:3: step 'a': train needs `dataset:`",
    ),
    "needs an unknown step": (
        "steps:\n" + STEP_A + "  b:\n    kind: train\n    dataset: a\n    needs: [ghost]\n",
        "fermion.yaml:6:5: step 'b' needs unknown step 'ghost' (the pipeline has: a, b)",
    ),
    "needs not names": (
        "steps:\n" + STEP_A + "  b: {kind: train, dataset: a, needs: {a: 1}}\n",
        "step 'b': `needs:` must be a step name or a list of step names",
    ),
    "needs itself": (
        "steps:\n" + STEP_A + "  b: {kind: train, dataset: a, needs: b}\n",
        "fermion.yaml:3:32: step 'b' needs itself",
    ),
    "input names itself": (
        "steps:\n  b: {kind: train, dataset: b}\n",
        "fermion.yaml:2:20: step 'b' needs itself",
    ),
    "cycle": (
        "steps:\n"
        "  start: {kind: data.add, source: s.csv, name: s}\n"
        "  a: {kind: data.clean, dataset: c, recipe: r.yaml}\n"
        "  b: {kind: data.split, dataset: a}\n"
        "  c: {kind: train, dataset: b}\n"
        "  d: {kind: train, dataset: c}\n",
        "fermion.yaml:3:3: steps in a cycle: a -> b -> c -> a",
    ),
}


@pytest.mark.parametrize(("text", "expected"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_bad_file_is_refused_whole_saying_where(tmp_path: Path, text: str, expected: str) -> None:
    message = _refusal(tmp_path, text)
    assert message.startswith(str(tmp_path / "fermion.yaml"))
    assert expected in message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"fermion\.yaml: no such file"):
        load_project(tmp_path / "fermion.yaml", TEST_KINDS)


def test_an_input_key_the_kind_makes_optional_may_be_left_out(tmp_path: Path) -> None:
    project = _load(tmp_path, "steps:\n  ship: {kind: deploy}\n")
    assert project.pipelines["default"].steps["ship"].config == {}


def test_anchors_and_merge_keys_share_config_without_counting_as_duplicates(
    tmp_path: Path,
) -> None:
    project = _load(
        tmp_path,
        """\
        steps:
          a: &add {kind: data.add, source: a.csv, name: a}
          b:
            <<: *add
            source: b.csv
            name: b
        """,
    )
    assert project.pipelines["default"].steps["b"].config == {"source": "b.csv", "name": "b"}
