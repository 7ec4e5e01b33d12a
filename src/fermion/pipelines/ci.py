"""A finished pipeline run as CI reports: a GitHub-flavoured Markdown summary (for people, and
for `$GITHUB_STEP_SUMMARY`) and JUnit XML (for any CI's test view): every step, and every
check a step judged (a gate's rules), with what was measured against what was expected."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from fermion.pipelines.runner import PipelineResult, StepState
from fermion.pipelines.types import Check

_ICONS = {
    "done": "✅",
    "cached": "♻️",
    "failed": "❌",
    "skipped": "⏭️",
    "pending": "⏸️",
    "running": "⏳",
}
# Characters XML 1.0 cannot hold at all, escaped or not (such as a colour code in an error).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# What could open an HTML tag or autolink in Markdown (`<lambda>`); `a < b` stays as it is.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def verdict(result: PipelineResult) -> str:
    """ "passed" when every step finished or was cached, else "failed"."""
    return "passed" if result.ok else "failed"


def markdown_summary(result: PipelineResult) -> str:
    """The run as Markdown: a heading with the pipeline and its verdict, a table of steps
    (state, time, summary or error) and, when steps judged checks, a table of the checks."""
    icon = "✅" if result.ok else "❌"
    lines = [
        f"## {icon} fermion pipeline `{result.pipeline}`: {verdict(result)}",
        "",
        f"{_counts(result)} (run {result.run_id})",
        "",
        "| step | kind | state | time | summary |",
        "|---|---|---|---:|---|",
    ]
    for state in result.steps.values():
        detail = state.error or (state.output.summary if state.output else "")
        lines.append(
            f"| {_cell(state.name)} | {_cell(state.kind)} | {_ICONS[state.state]} {state.state} "
            f"| {_time(state)} | {_cell(detail)} |"
        )
    checks = [(state, check) for state in result.steps.values() for check in state.checks]
    if checks:
        lines += [
            "",
            "### Checks",
            "",
            "| step | check | value | expected | result | detail |",
            "|---|---|---:|---|---|---|",
        ]
        for state, check in checks:
            outcome = "✅ pass" if check.passed else "❌ fail"
            lines.append(
                f"| {_cell(state.name)} | {_cell(check.name)} | {_value(check)} "
                f"| {_cell(check.expected)} | {outcome} | {_cell(check.detail)} |"
            )
    return "\n".join(lines) + "\n"


def junit_xml(result: PipelineResult) -> str:
    """The run as JUnit XML: one test suite for the pipeline, one test case per check
    (classname `pipeline.STEP`, named after the check), and one per step that judged none,
    failed when the step failed and skipped when it was skipped. A failed step none of whose
    checks failed (it failed for another reason) gets a test case of its own as well, so that
    every failed step counts as a failure."""
    suite = ET.Element("testsuite", name=f"fermion pipeline {result.pipeline}")
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="run_id", value=str(result.run_id))
    for state in result.steps.values():
        for check in state.checks:
            _check_case(suite, state, check)
        if not state.checks or (
            state.state == "failed" and all(check.passed for check in state.checks)
        ):
            _step_case(suite, state)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(case.find("failure") is not None for case in cases)))
    suite.set("errors", "0")
    suite.set("skipped", str(sum(case.find("skipped") is not None for case in cases)))
    suite.set("time", _seconds(result.seconds))
    root = ET.Element("testsuites", name="fermion")
    for attribute in ("tests", "failures", "errors", "skipped", "time"):
        root.set(attribute, suite.get(attribute, "0"))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _check_case(suite: ET.Element, state: StepState, check: Check) -> None:
    # the step's time, shared among its checks, so that the cases add up to the suite's time
    seconds = state.seconds / len(state.checks)
    case = _case(suite, state, _xml_text(check.name), seconds)
    if not check.passed:
        measured = "nothing" if check.value is None else _number(check.value)
        message = f"{check.name}: measured {measured}, expected {check.expected or '-'}"
        failure = ET.SubElement(case, "failure", message=_xml_text(message))
        failure.text = _xml_text(f"{message}\n{check.detail}" if check.detail else message)


def _step_case(suite: ET.Element, state: StepState) -> None:
    case = _case(suite, state, _xml_text(state.name), state.seconds)
    error = _xml_text(state.error or "")
    if state.state == "failed":
        failure = ET.SubElement(case, "failure", message=error.splitlines()[0] if error else "")
        failure.text = error
    elif state.state not in ("done", "cached"):
        ET.SubElement(case, "skipped", message=error or state.state)
    elif state.output is not None and state.output.summary:
        ET.SubElement(case, "system-out").text = _xml_text(state.output.summary)


def _case(suite: ET.Element, state: StepState, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(
        suite,
        "testcase",
        classname=_xml_text(f"pipeline.{state.name}"),
        name=name,
        time=_seconds(seconds),
    )


def _counts(result: PipelineResult) -> str:
    counts: dict[str, int] = {}
    for state in result.steps.values():
        counts[state.state] = counts.get(state.state, 0) + 1
    total = len(result.steps)
    parts = ", ".join(f"{n} {state}" for state, n in counts.items())
    steps = f"{total} step{'s' if total != 1 else ''} in {result.seconds:.1f} s"
    return f"{steps}: {parts}" if parts else steps


def _time(state: StepState) -> str:
    return f"{state.seconds:.1f} s" if state.state in ("done", "cached", "failed") else "-"


def _value(check: Check) -> str:
    return "-" if check.value is None else _number(check.value)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _seconds(seconds: float) -> str:
    return f"{seconds:.3f}"


def _cell(text: str) -> str:
    """Text that stays inside one cell of a Markdown table, shown as written."""
    one_line = " ".join(_xml_text(text).split())
    return _TAG_START.sub("&lt;", one_line.replace("\\", "\\\\").replace("|", "\\|")) or " "


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)
