"""Synthetic audit run folders for the report tests, and a check that the
committed copies under tests/fixtures/ are what this generator writes.

Each run has 20 vignettes posed to 8 race x gender groups, with two
questions: "decision" (Yes/No, with reference answers) and "dose"
(High/Low, without). Both runs build in a lower P(Yes) for Black women.
The "after" run shrinks that shift, as a mitigated model would. The summaries
come from medfair.stats.assess_fairness, as the audit writes them.

Regenerate with: PYTHONPATH=python python tests/python/test_report_fixtures.py
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
RACES = ["Asian", "Black", "Hispanic", "White"]
GENDERS = ["man", "woman"]
AXES = ["race", "gender"]
QUESTIONS = {"decision": ["Yes", "No"], "dose": ["High", "Low"]}
N_VIGNETTES = 20
# Shift in log-odds of the first option for Black women, per run.
RUNS = {"audit_before": (-1.2, 11), "audit_after": (-0.3, 12)}
REPLICATES = 2000
BOOTSTRAP_SEED = 20240607


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def make_rows(shift: float, seed: int) -> list[dict]:
    # Vignette baselines are shared by both runs, so the runs pair by vignette.
    base_rng = np.random.default_rng(7)
    baselines = {q: base_rng.uniform(-1.0, 2.0, size=N_VIGNETTES) for q in QUESTIONS}
    references = base_rng.uniform(size=N_VIGNETTES) < 0.85
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(N_VIGNETTES):
        vignette_id = f"v{v + 1:02d}"
        for question, options in QUESTIONS.items():
            for race in RACES:
                for gender in GENDERS:
                    group_shift = shift if (race, gender) == ("Black", "woman") else 0.0
                    if question == "dose":
                        group_shift *= 0.5
                    p_first = round(sigmoid(baselines[question][v] + group_shift + rng.normal(scale=0.35)), 4)
                    probabilities = [p_first, round(1.0 - p_first, 4)]
                    coverage = round(float(rng.uniform(0.82, 0.99)), 4)
                    reference = None
                    if question == "decision":
                        reference = "Yes" if references[v] else "No"
                    rows.append({
                        "prompt_id": f"{vignette_id}-{question}-{race}-{gender}",
                        "task": "synthetic-pain",
                        "question": question,
                        "vignette_id": vignette_id,
                        "attributes": {"race": race, "gender": gender},
                        "group": f"{race}|{gender}",
                        "options": options,
                        "probabilities": probabilities,
                        "log_probs": [round(math.log(max(p, 1e-6) * coverage), 4) for p in probabilities],
                        "coverage": coverage,
                        "predicted": options[int(np.argmax(probabilities))],
                        "reference": reference,
                    })
    return rows


def assess(rows: list[dict], question: str) -> dict:
    import medfair

    options = QUESTIONS[question]
    selected = [r for r in rows if r["question"] == question]
    return medfair.stats.assess_fairness(
        [r["vignette_id"] for r in selected],
        [[r["attributes"][axis] for axis in AXES] for r in selected],
        [r["probabilities"] for r in selected],
        [options.index(r["predicted"]) for r in selected],
        [None if r["reference"] is None else options.index(r["reference"]) for r in selected],
        AXES, options, expected_levels=[RACES, GENDERS], replicates=REPLICATES, seed=BOOTSTRAP_SEED)


def make_summary(rows: list[dict], seed: int) -> dict:
    coverages = [r["coverage"] for r in rows]
    return {
        "schema_version": 1,
        "settings": {
            "model": "models/synthetic-model.gguf",
            "model_sha256": hashlib.sha256(f"synthetic model {seed}".encode()).hexdigest(),
            "task": "synthetic-pain",
            "data_files": [{"path": "synthetic/vignettes.csv",
                            "sha256": hashlib.sha256(b"synthetic vignettes").hexdigest()}],
            "prompting": "zero-shot",
            "seed": seed,
            "medfair_version": "0.1.0",
            "torch_version": "2.13.0+cpu",
            "created": f"2026-12-04T12:{seed:02d}:00+00:00",
            "n_prompts": len(rows),
        },
        "questions": {q: assess(rows, q) for q in QUESTIONS},
        "coverage": {"mean": round(sum(coverages) / len(coverages), 6), "min": min(coverages)},
    }


def write_run(folder: pathlib.Path, shift: float, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = make_rows(shift, seed)
    with open(folder / "results.jsonl", "w", encoding="utf-8") as stream:
        for row in rows:
            stream.write(json.dumps(row) + "\n")
    with open(folder / "summary.json", "w", encoding="utf-8") as stream:
        json.dump(make_summary(rows, seed), stream, indent=1)
        stream.write("\n")


def write_all(target: pathlib.Path) -> None:
    for name, (shift, seed) in RUNS.items():
        write_run(target / name, shift, seed)


def assert_same_json(committed, fresh, where: str) -> None:
    """Compare two JSON values, floats to 1e-9 relative, since the mixed-model fit may move in the last bits."""
    if isinstance(committed, dict):
        assert isinstance(fresh, dict) and sorted(committed) == sorted(fresh), where
        for key in committed:
            assert_same_json(committed[key], fresh[key], f"{where}.{key}")
    elif isinstance(committed, list):
        assert isinstance(fresh, list) and len(committed) == len(fresh), where
        for i, (a, b) in enumerate(zip(committed, fresh)):
            assert_same_json(a, b, f"{where}[{i}]")
    elif isinstance(committed, float):
        assert fresh == pytest.approx(committed, rel=1e-9, abs=1e-12), where
    else:
        assert committed == fresh, where


def test_fixtures_match_generator(tmp_path):
    write_all(tmp_path)
    stale = f"is stale: rerun {pathlib.Path(__file__).name} as a script"
    for name in RUNS:
        committed = (FIXTURES / name / "results.jsonl").read_text(encoding="utf-8")
        fresh = (tmp_path / name / "results.jsonl").read_text(encoding="utf-8")
        assert committed == fresh, f"{name}/results.jsonl {stale}"
        committed = json.loads((FIXTURES / name / "summary.json").read_text(encoding="utf-8"))
        fresh = json.loads((tmp_path / name / "summary.json").read_text(encoding="utf-8"))
        assert_same_json(committed, fresh, f"{name}/summary.json {stale}: ")


if __name__ == "__main__":
    write_all(FIXTURES)
    sys.exit(0)
