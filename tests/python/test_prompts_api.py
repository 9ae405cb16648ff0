"""Python API of the prompt layer on the real Q-Pain, nurse and Healer files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import medfair

DATA = Path(os.environ.get("MEDFAIR_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
REPO = Path(__file__).resolve().parents[2]
MASK = (1 << 64) - 1


@pytest.fixture(scope="module")
def qpain():
    return medfair.load_task("qpain", DATA)


def test_qpain_counts(qpain):
    assert len(qpain) == 55
    prompts = medfair.PromptModifier().counterfactuals(qpain)
    assert len(prompts) == 440
    groups = {record.group for record in prompts}
    assert len(groups) == 8


def test_records_and_dataframe(qpain):
    prompts = medfair.PromptModifier(seed=5).counterfactuals(qpain)
    records = prompts.to_records()
    assert len(records) == 440
    first = records[0]
    assert list(first)[:3] == ["prompt_id", "task", "vignette_id"]
    assert first["attributes"] == {"race": "white", "gender": "female"}
    assert first["reference_answer"] == "Yes"
    assert [option["id"] for option in first["options"]] == ["Yes", "No"]
    assert first["stages"][1]["condition_option"] == "Yes"

    frame = prompts.to_dataframe()
    assert frame.shape[0] == 440
    assert {"race", "gender", "prompt", "reference_answer"} <= set(frame.columns)
    assert (frame.groupby(["race", "gender"]).size() == 55).all()
    assert frame["prompt_id"].is_unique


def test_jsonl_export(qpain, tmp_path):
    prompts = medfair.PromptModifier(seed=1).counterfactuals(qpain)
    path = tmp_path / "prompts.jsonl"
    prompts.write_jsonl(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 440
    assert json.loads(lines[3]) == prompts.to_records()[3]
    again = tmp_path / "again.jsonl"
    medfair.PromptModifier(seed=1).counterfactuals(qpain).write_jsonl(again)
    assert path.read_bytes() == again.read_bytes()


def test_neutral_prompt(qpain):
    prompts = medfair.PromptModifier().neutral(qpain)
    assert len(prompts) == 55
    assert prompts[0].prompt.startswith("The patient is a 62-year-old patient with history of lung cancer")
    assert prompts[0].attributes == {}


def test_nurse_and_healer():
    nurse = medfair.load_task("nurse", DATA)
    assert len(nurse) == 24
    assert {vignette.variant_count for vignette in nurse.vignettes} == {8}
    healer = medfair.load_task("healer", DATA)
    assert len(healer) == 28
    issues = medfair.lint_file(DATA / "healer" / "ED_cases.csv")
    assert [issue.code for issue in issues] == ["demographic-leak"]
    assert issues[0].line == 2
    assert issues[0].column == 165


def test_render_and_errors():
    modifier = medfair.PromptModifier()
    text = modifier.render("{Name} is {race}; {pronoun.subject} is here.", {"race": "black", "gender": "female"}, "Aisha")
    assert text == "Aisha is Black; she is here."
    with pytest.raises(medfair.DataError, match=r"template:1:1: '\{' without a matching '\}'"):
        modifier.render("{race patient", {})
    with pytest.raises(medfair.ConfigError, match="unknown attribute axis"):
        medfair.PromptModifier(axes=["height"])
    with pytest.raises(medfair.FormatError, match="invalid UTF-8"):
        medfair.load_generic(REPO / "tests" / "data" / "bad" / "invalid_utf8.csv")


def _fnv1a(text: str, value: int = 0xCBF29CE484222325) -> int:
    for byte in text.encode():
        value = ((value ^ byte) * 0x100000001B3) & MASK
    return value


class _SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        threshold = ((1 << 64) - bound) % bound
        while True:
            value = self.next()
            if value >= threshold:
                return value % bound


def test_names_match_reference_rng(qpain):
    """Names follow the documented RNG, recomputed here independently."""
    catalog = medfair.AttributeCatalog.builtin()
    for seed in (0, 42):
        for record in medfair.PromptModifier(seed=seed).counterfactuals(qpain):
            key = f"name/qpain/{record.vignette_id}/{record.group}"
            names = catalog.names(record.attributes)
            index = _SplitMix64(_SplitMix64(_fnv1a(key) ^ seed).next()).below(len(names))
            assert record.name == names[index], record.prompt_id


def test_catalog_api():
    catalog = medfair.AttributeCatalog.builtin()
    assert catalog.axis_names[:3] == ["race", "ethnicity", "gender"]
    assert catalog.default_values("race") == ["white", "black", "asian", "hispanic"]
    assert catalog.pronouns({"gender": "nonbinary"})["subject"] == "they"
    assert catalog.pronouns({})["possessive"] == "their"
    on_disk = json.loads((REPO / "data" / "attributes.json").read_text(encoding="utf-8"))
    assert [axis["name"] for axis in on_disk["axes"]] == catalog.axis_names


def test_csv_reader_matches_python_csv():
    """The C++ reader gives exactly the cells of Python's csv module on every real file."""
    import csv

    files = sorted(DATA.glob("*/*.csv"))
    assert len(files) == 8
    for path in files:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            expected = [row for row in csv.reader(handle) if row]
        header, rows = medfair._core._read_csv(path)
        assert header == expected[0], path
        assert rows == expected[1:], path
