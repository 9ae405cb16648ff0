"""Counterfactual prompts: tasks, the attribute catalog and PromptModifier.

The classes come from the C++ extension; this module adds the pandas export,
importing pandas only when it is called.
"""

from __future__ import annotations

from typing import Any

from ._core import (
    AttributeCatalog,
    LintIssue,
    PromptModifier,
    PromptRecord,
    PromptSet,
    Task,
    Template,
    Vignette,
    lint_file,
    load_generic,
    load_healer,
    load_nurse,
    load_qpain,
    load_task,
    parse_option_list,
)

__all__ = [
    "AttributeCatalog",
    "LintIssue",
    "PromptModifier",
    "PromptRecord",
    "PromptSet",
    "Task",
    "Template",
    "Vignette",
    "lint_file",
    "load_generic",
    "load_healer",
    "load_nurse",
    "load_qpain",
    "load_task",
    "parse_option_list",
    "to_dataframe",
]


def to_dataframe(prompts: PromptSet) -> Any:
    """Return one row per prompt as a pandas DataFrame.

    Columns: prompt_id, task, vignette_id, vignette_group, set_id, group,
    format, one column per attribute axis, name, system, prompt, options (the
    first stage's option ids), reference_answer, and stages (the full stage
    list as in the JSONL export).
    """
    import pandas as pd

    records = prompts.to_records()
    axes: list[str] = []
    for record in records:
        for axis in record["attributes"]:
            if axis not in axes:
                axes.append(axis)
    rows = []
    for record in records:
        row = {key: record[key] for key in ("prompt_id", "task", "vignette_id", "vignette_group", "set_id", "group", "format")}
        for axis in axes:
            row[axis] = record["attributes"].get(axis)
        row["name"] = record["name"]
        row["system"] = record["system"]
        row["prompt"] = record["prompt"]
        row["options"] = [option["id"] for option in record["options"]]
        row["reference_answer"] = record["reference_answer"]
        row["stages"] = record["stages"]
        rows.append(row)
    columns = ["prompt_id", "task", "vignette_id", "vignette_group", "set_id", "group", "format", *axes,
               "name", "system", "prompt", "options", "reference_answer", "stages"]
    return pd.DataFrame(rows, columns=columns)


PromptSet.to_dataframe = to_dataframe
