"""The `gate` step kind: rules a model must meet before the steps after it (a promotion) run.

A threshold reads its metric from the outputs of the steps the gate needs, then from the
model version's registered metrics. A comparison with an alias scores the candidate and the
alias's model afresh on the same rows, so both numbers come from the same split. The kind is
not cacheable: the model behind an alias may have moved since the last run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fermion.errors import FermionError, InvalidInputError, NotFoundError
from fermion.pipelines.gate_rules import (
    OPTIMIZED_WITHIN_DROP,
    VALIDATION_PASSED,
    Comparison,
    Fact,
    Rule,
    Threshold,
    holds,
    parse_rules,
)
from fermion.pipelines.kinds_config import StepConfig, input_hash, input_ref
from fermion.pipelines.kinds_optimize import FIGURES, RATIOS
from fermion.pipelines.types import (
    DATASET,
    MODEL,
    Check,
    ChecksFailedError,
    StepContext,
    StepOutput,
)
from fermion.training.metrics import GREATER_IS_BETTER

if TYPE_CHECKING:
    from fermion.entities import ModelVersion

# What a needed step's output says of its kind: only data.validate and optimize give these.
VALIDATION_METRIC = "rules_failed"
VARIANTS_METRIC = "variants_passed"


def check_gate_config(step: str, config: Mapping[str, Any], kinds: Mapping[str, str]) -> None:
    """When the pipeline file loads: the gate's rules parse, and each metric they name is one
    a step or a model can report (a `python` step in the pipeline may report any)."""
    rules = parse_rules(config.get("rules"), step)
    if "python" in kinds.values():
        return
    for rule in rules:
        for metric in _metrics_of(rule):
            if not _known_metric(metric):
                raise InvalidInputError(
                    f"step {step!r}: gate rule {rule.text!r} names metric {metric!r}, which no "
                    f"step or model reports (metrics: {', '.join(sorted(_KNOWN_METRICS))}; "
                    "also valid_, cv_ or test_ before a model metric)"
                )


def _metrics_of(rule: Rule) -> list[str]:
    if isinstance(rule, Comparison):
        return [rule.metric, rule.other]
    if isinstance(rule, Threshold):
        return [rule.metric]
    return []


def _known_metric(name: str) -> bool:
    for prefix in ("valid_", "cv_", "test_"):
        if name.startswith(prefix) and name[len(prefix) :] in GREATER_IS_BETTER:
            return True
    return name in _KNOWN_METRICS


# Model metrics (evaluation, training, tuning) and what the built-in steps put in their outputs
_KNOWN_METRICS = frozenset(
    [
        *GREATER_IS_BETTER,
        *FIGURES,
        *RATIOS,
        "variants_passed",
        "variants_dropped",
        "rows",
        "columns",
        "train_rows",
        "valid_rows",
        "test_rows",
        "rules_passed",
        "rules_failed",
        "trials_complete",
    ]
)


def run_gate(ctx: StepContext) -> StepOutput:
    """Judges every rule; raises `ChecksFailedError` with all the checks when any fails."""
    rules = parse_rules(ctx.spec.config.get("rules"), ctx.spec.name)
    version = ctx.workspace.models.get(ctx.ref(MODEL, MODEL))
    judge = _Judge(ctx, version)
    checks = [judge.check(rule) for rule in rules]
    failed = [check for check in checks if not check.passed]
    if failed:
        raise ChecksFailedError(
            f"{len(failed)} of {len(checks)} gate rules failed: "
            + "; ".join(f"{c.name} ({_value_text(c)})" for c in failed),
            checks,
        )
    return StepOutput(
        refs={MODEL: version.ref},
        hashes={MODEL: input_hash(ctx, MODEL, MODEL, version.content_hash)},
        metrics=judge.measured,
        summary=f"{version.ref}: {len(checks)}/{len(checks)} rules hold",
        checks=tuple(checks),
    )


def _value_text(check: Check) -> str:
    return _num(check.value) if check.value is not None else check.detail or "not measured"


def _num(value: float) -> str:
    return f"{value:.4g}"


class _Judge:
    """Judges rules for one candidate, scoring each model on the gate's rows at most once."""

    def __init__(self, ctx: StepContext, version: ModelVersion) -> None:
        self.ctx, self.version = ctx, version
        self.config = StepConfig(ctx)
        self.measured: dict[str, float] = {}
        self._scores: dict[str, Mapping[str, float]] = {}

    def check(self, rule: Rule) -> Check:
        if isinstance(rule, Threshold):
            return self._threshold(rule)
        if isinstance(rule, Comparison):
            return self._comparison(rule)
        return self._fact(rule)

    def _threshold(self, rule: Threshold) -> Check:
        found = self._metric(rule.metric)
        expected = f"{rule.op} {rule.number:g}"
        if found is None:
            return Check(rule.text, False, None, expected, self._unknown(rule.metric))
        value, source = found
        self.measured[rule.metric] = value
        return Check(rule.text, holds(rule.op, value, rule.number), value, expected, source)

    def _metric(self, name: str) -> tuple[float, str] | None:
        """The metric and where it came from: a needed step's output (in the order the file
        declares them), else the version's registered metrics."""
        for step, output in self.ctx.needed.items():
            if name in output.metrics:
                return output.metrics[name], f"from step {step}"
        if name in self.version.metrics:
            return self.version.metrics[name], f"registered with {self.version.ref}"
        return None

    def _unknown(self, name: str) -> str:
        names = {m for output in self.ctx.needed.values() for m in output.metrics}
        names |= set(self.version.metrics)
        return f"no metric {name!r} (available: {', '.join(sorted(names)) or 'none'})"

    def _comparison(self, rule: Comparison) -> Check:
        ref = f"{self.version.name}@{rule.alias}"
        try:
            current = self.ctx.workspace.models.get(ref)
        except NotFoundError:
            return Check(rule.text, True, None, "", f"no {rule.alias} model yet")
        if current.version == self.version.version:
            # Rerunning after a promotion must not fail on an offset against itself, nor
            # spend seconds scoring one model twice on the same rows.
            found = self._metric(rule.metric)
            value = found[0] if found is not None else None
            return Check(rule.text, True, value, "", f"{ref} is already {current.ref}")
        try:
            value = self._score(self.version, rule.metric)
            other = self._score(current, rule.other)
        except FermionError as exc:
            return Check(rule.text, False, None, "", str(exc))
        right = other + rule.offset
        self.measured[rule.metric] = value
        self.measured[f"{rule.alias}_{rule.other}"] = other
        expected = f"{rule.op} {_num(right)}"
        detail = f"{ref} is {current.ref}: {rule.other} {_num(other)} on {self._rows_text()}"
        return Check(rule.text, holds(rule.op, value, right), value, expected, detail)

    def _score(self, version: ModelVersion, metric: str) -> float:
        from fermion.training.evaluation import evaluate_registered

        if version.ref not in self._scores:
            data, part = self._rows()
            report = evaluate_registered(
                self.ctx.workspace,
                version.ref,
                data,
                part=part,
                plots=False,
                trusted=self.config.flag("trusted"),
            )
            self._scores[version.ref] = dict(report.evaluation.metrics)
        scores = self._scores[version.ref]
        if metric not in scores:
            raise InvalidInputError(
                f"evaluating {version.ref} gives no {metric!r} "
                f"(it gives: {', '.join(sorted(scores))})"
            )
        return scores[metric]

    def _rows(self) -> tuple[str, str]:
        """As the `evaluate` kind: the given dataset (every row unless `part`), else the
        candidate's training data, test part."""
        data = input_ref(self.ctx, DATASET, DATASET)
        part = self.config.text("part", "all" if data is not None else "test")
        if data is None:
            data = self.ctx.workspace.models.manifest(self.version).get("data")
            if not data:
                raise InvalidInputError(
                    f"{self.version.ref} records no training data (imported?): give the gate "
                    "a dataset to compare on"
                )
        return str(data), part

    def _rows_text(self) -> str:
        data, part = self._rows()
        return f"{data} ({part})"

    def _fact(self, rule: Fact) -> Check:
        if rule.text == VALIDATION_PASSED:
            return self._validation(rule)
        if rule.text == OPTIMIZED_WITHIN_DROP:
            return self._optimized(rule)
        raise AssertionError(rule.text)  # parse_rule gives no other fact

    def _validation(self, rule: Fact) -> Check:
        found = {s: o for s, o in self.ctx.needed.items() if VALIDATION_METRIC in o.metrics}
        if not found:
            return Check(
                rule.text, False, None, "a data.validate step",
                "the gate needs no data.validate step: add it to the gate's needs",
            )  # fmt: skip
        failed = [s for s, o in found.items() if o.metrics[VALIDATION_METRIC] > 0]
        passed = sum(o.metrics.get("rules_passed", 0.0) for o in found.values())
        detail = ", ".join(found) + (f" failed ({', '.join(failed)})" if failed else " passed")
        return Check(rule.text, not failed, passed, "every rule passed", detail)

    def _optimized(self, rule: Fact) -> Check:
        found = {s: o for s, o in self.ctx.needed.items() if VARIANTS_METRIC in o.metrics}
        if not found:
            return Check(
                rule.text, False, None, "> 0",
                "the gate needs no optimize step: add it to the gate's needs",
            )  # fmt: skip
        step, output = next(iter(found.items()))
        variants = output.metrics[VARIANTS_METRIC]
        self.measured[VARIANTS_METRIC] = variants
        detail = (
            f"{step} registered {variants:g} variant(s)"
            if variants > 0
            else f"no variant of step {step} kept its metric within the allowed drop"
        )
        return Check(rule.text, variants > 0, variants, "> 0", detail)
