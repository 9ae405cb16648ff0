"""Load and validate an audit run folder (summary.json and results.jsonl)."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any

SUMMARY_FILE = "summary.json"
RESULTS_FILE = "results.jsonl"
SCHEMA_VERSION = 1

_FIX = "rerun `medfair audit` to write the run folder again, or pass the folder it wrote"


def _errors():
    import medfair

    return medfair


@dataclasses.dataclass
class Run:
    """One audit run: its folder, its summary and its scored prompts."""

    folder: pathlib.Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def settings(self) -> dict[str, Any]:
        return self.summary["settings"]

    @property
    def questions(self) -> dict[str, dict[str, Any]]:
        return self.summary["questions"]

    def main_question(self) -> str:
        """Return the question of the headline: "decision" when present, else the first."""
        return "decision" if "decision" in self.questions else next(iter(self.questions))


def _require(mapping: Any, key: str, kind: type | tuple[type, ...], where: str, path: pathlib.Path) -> Any:
    medfair = _errors()
    if not isinstance(mapping, dict) or key not in mapping:
        raise medfair.DataError(f"{path}: missing key '{where}{key}'; {_FIX}")
    value = mapping[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise medfair.DataError(
            f"{path}: key '{where}{key}' should be {names} but is {type(value).__name__}; {_FIX}")
    return value


def _check_fairness_report(report: Any, question: str, path: pathlib.Path) -> None:
    where = f"questions.{question}."
    if _require(report, "schema_version", int, where, path) != SCHEMA_VERSION:
        raise _errors().DataError(
            f"{path}: '{where}schema_version' is {report['schema_version']}, but this medfair reads version "
            f"{SCHEMA_VERSION}; render it with the medfair version that wrote it")
    axes = _require(report, "axes", list, where, path)
    options = _require(report, "options", list, where, path)
    target = _require(report, "target_option", str, where, path)
    if target not in options:
        raise _errors().DataError(f"{path}: '{where}target_option' is '{target}', which is not one of {options}")
    levels = _require(report, "levels", dict, where, path)
    for level_name in ["intersectional", *axes]:
        level = _require(levels, level_name, dict, where + "levels.", path)
        level_where = f"{where}levels.{level_name}."
        _require(level, "groups", list, level_where, path)
        _require(level, "by_group", dict, level_where, path)
        _require(level, "metrics", dict, level_where, path)
        _require(level, "pairwise", list, level_where, path)
        _require(level, "vignette_gaps", dict, level_where, path)
        for group in level["groups"]:
            _require(level["by_group"], group, dict, level_where + "by_group.", path)


def load_summary(folder: pathlib.Path) -> dict[str, Any]:
    """Read and validate RUN/summary.json. Raises medfair.IOError, FormatError or DataError."""
    medfair = _errors()
    path = folder / SUMMARY_FILE
    if not folder.is_dir():
        raise medfair.IOError(f"{folder}: run folder not found; pass the folder that `medfair audit` wrote")
    if not path.is_file():
        raise medfair.IOError(f"{path}: file not found; the run folder of `medfair audit` has summary.json "
                              f"and results.jsonl, so {_FIX}")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise medfair.FormatError(f"{path}: not UTF-8 text ({error}); {_FIX}") from None
    except json.JSONDecodeError as error:
        raise medfair.FormatError(
            f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}; {_FIX}") from None

    if not isinstance(summary, dict):
        raise medfair.DataError(f"{path}: expected a JSON object at the top level, found {type(summary).__name__}")
    version = _require(summary, "schema_version", int, "", path)
    if version != SCHEMA_VERSION:
        raise medfair.DataError(f"{path}: schema_version is {version}, but this medfair reads version "
                                f"{SCHEMA_VERSION}; render it with the medfair version that wrote it")

    _require(summary, "settings", dict, "", path)
    questions = _require(summary, "questions", dict, "", path)
    if not questions:
        raise medfair.DataError(f"{path}: 'questions' is empty, so there is nothing to report; {_FIX}")
    for question, report in questions.items():
        if not isinstance(report, dict):
            raise medfair.DataError(f"{path}: 'questions.{question}' should be an object but is "
                                    f"{type(report).__name__}; {_FIX}")
        _check_fairness_report(report, question, path)
    return summary


def _check_row(row: Any, path: pathlib.Path, line_number: int) -> None:
    medfair = _errors()
    where = f"{path}:{line_number}"
    if not isinstance(row, dict):
        raise medfair.DataError(f"{where}: expected a JSON object per line, found {type(row).__name__}")
    for key, kind in [("vignette_id", str), ("question", str), ("attributes", dict), ("options", list),
                      ("probabilities", list)]:
        if key not in row:
            raise medfair.DataError(f"{where}: missing key '{key}'; each line is one scored prompt; {_FIX}")
        if not isinstance(row[key], kind):
            raise medfair.DataError(
                f"{where}: key '{key}' should be {kind.__name__} but is {type(row[key]).__name__}")
    probabilities = row["probabilities"]
    if len(probabilities) != len(row["options"]):
        raise medfair.DataError(f"{where}: {len(probabilities)} probabilities for {len(row['options'])} options; "
                                f"expected one probability per option")
    for p in probabilities:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or not 0 <= p <= 1:
            raise medfair.DataError(f"{where}: probability {p!r} is not a number in [0, 1]")


def load_results(folder: pathlib.Path) -> list[dict[str, Any]]:
    """Read and validate RUN/results.jsonl, one scored prompt per line."""
    medfair = _errors()
    path = folder / RESULTS_FILE
    if not path.is_file():
        raise medfair.IOError(f"{path}: file not found; the heatmap needs the scored prompts, so {_FIX}")
    rows = []
    with open(path, encoding="utf-8", errors="strict") as stream:
        try:
            for line_number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise medfair.FormatError(
                        f"{path}:{line_number}: invalid JSON at column {error.colno}: {error.msg}; {_FIX}") from None
                _check_row(row, path, line_number)
                rows.append(row)
        except UnicodeDecodeError as error:
            raise medfair.FormatError(f"{path}: not UTF-8 text ({error}); {_FIX}") from None
    if not rows:
        raise medfair.DataError(f"{path}: no scored prompts; {_FIX}")
    return rows


def question_rows(rows: list[dict[str, Any]], question: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the results.jsonl rows of one summary.json question.

    A stage whose vignettes offer different option sets is summarised as
    several questions ("decision", "decision [a/b/c/d]"), so rows match on the
    stage name and, where the summary lists them, the options.
    """
    stage = question.split(" [", 1)[0]
    options = report.get("options")
    return [row for row in rows if row["question"] == stage and (options is None or row["options"] == options)]


def _check_consistency(summary: dict[str, Any], rows: list[dict[str, Any]], folder: pathlib.Path) -> None:
    medfair = _errors()
    for question, report in summary["questions"].items():
        selected = question_rows(rows, question, report)
        if not selected:
            raise medfair.DataError(
                f"{folder / RESULTS_FILE}: no rows for question '{question}', which {SUMMARY_FILE} reports; "
                f"the two files come from different runs, so {_FIX}")
        for row in selected:
            missing = [axis for axis in report["axes"] if axis not in row["attributes"]]
            if missing:
                raise medfair.DataError(
                    f"{folder / RESULTS_FILE}: prompt '{row.get('prompt_id', '?')}' has no attribute "
                    f"{missing[0]!r}, one of the axes {report['axes']} in {SUMMARY_FILE}")
            if report["target_option"] not in row["options"]:
                raise medfair.DataError(
                    f"{folder / RESULTS_FILE}: prompt '{row.get('prompt_id', '?')}' has options {row['options']}, "
                    f"without the target option '{report['target_option']}' of {SUMMARY_FILE}")


def load_run(folder: str | pathlib.Path) -> Run:
    """Load a run folder written by the audit, checking both files against each other."""
    folder = pathlib.Path(folder)
    summary = load_summary(folder)
    rows = load_results(folder)
    _check_consistency(summary, rows, folder)
    return Run(folder=folder, summary=summary, rows=rows)
