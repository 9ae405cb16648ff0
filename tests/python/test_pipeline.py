"""medfair.pipeline on the shipped pain-management vignettes with SmolLM2:
every stage's files, resuming, --from, and the settings check."""

from __future__ import annotations

import json
import shutil

import pytest

from medfair.audit import PROJECT_DATA

DATA = PROJECT_DATA / "vignettes" / "pain_management.jsonl"


def small_config(**changes):
    import medfair

    values = dict(
        task="generic", data=str(DATA), test_fraction=0.5, bootstrap_replicates=50, draws_per_vignette=1,
        max_new_tokens=24, align_options={"epochs": 1},
    )
    values.update(changes)
    return medfair.PipelineConfig(**values)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import medfair

    out = tmp_path_factory.mktemp("pipeline")
    lines: list[str] = []
    result = medfair.pipeline(small_config(), out=out, progress=False, log=lines.append)
    return result, lines


def test_pipeline_writes_every_stage(finished_run):
    from medfair.pipeline import STAGES

    result, _ = finished_run
    out = result.out_dir
    assert list(json.loads((out / "stages.json").read_text())) == STAGES
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) == 4
    assert len(split["test"]) == 4
    assert not set(split["train"]) & set(split["test"])
    for folder in ("audit_before", "audit_after"):
        summary = json.loads((out / folder / "summary.json").read_text())
        audited = {r["vignette_id"] for r in map(json.loads, (out / folder / "results.jsonl").read_text().splitlines())}
        assert audited == set(split["test"])
        assert summary["settings"]["n_prompts"] == 4 * 8
    assert "adapter" in json.loads((out / "audit_after" / "summary.json").read_text())["settings"]
    prefs = [json.loads(line) for line in (out / "prefs.jsonl").read_text().splitlines()]
    assert prefs
    assert {p["vignette_id"] for p in prefs} <= set(split["train"])
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "report.html").stat().st_size > 1000
    config = json.loads((out / "config.json").read_text())
    assert len(config["files"]["model_sha256"]) == 64
    assert config["files"]["data_files"][0]["path"] == str(DATA)


def test_pipeline_comparison_has_headlines(finished_run):
    result, _ = finished_run
    comparison = result.comparison
    for side in ("before", "after"):
        decision = comparison[side]["decision"]
        assert 0 <= decision["max_gap"] <= 1
        assert 0 <= decision["accuracy"] <= 1
    assert comparison["paired"]["decision"]["n_vignettes"] == 4


def test_pipeline_rerun_skips_finished_stages(finished_run):
    import medfair

    result, _ = finished_run
    lines: list[str] = []
    again = medfair.pipeline(small_config(), out=result.out_dir, progress=False, log=lines.append)
    assert sum("finished earlier, skipped" in line for line in lines) == 8
    assert again.comparison == result.comparison


def test_pipeline_from_stage_redoes_later_stages(finished_run):
    import medfair

    result, _ = finished_run
    report = result.out_dir / "report.html"
    report.unlink()
    lines: list[str] = []
    again = medfair.pipeline(small_config(), out=result.out_dir, from_stage="report", progress=False,
                             log=lines.append)
    assert report.exists()
    assert sum("skipped" in line for line in lines) == 7
    assert again.comparison == result.comparison


def test_pipeline_from_stage_names_kept_stages(finished_run, tmp_path):
    import medfair

    result, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(result.out_dir, copy)
    lines: list[str] = []
    medfair.pipeline(small_config(seed=7), out=copy, from_stage="report", progress=False, log=lines.append)
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == 1
    assert "split, audit_before" in notes[0]
    assert "changed: seed" in notes[0]


def test_pipeline_rejects_other_settings(finished_run):
    import medfair

    result, _ = finished_run
    with pytest.raises(medfair.ConfigError, match="seed"):
        medfair.pipeline(small_config(seed=7), out=result.out_dir, progress=False, log=lambda line: None)


def test_pipeline_config_file(tmp_path):
    import medfair

    path = tmp_path / "pipeline.toml"
    path.write_text('task = "generic"\ndata = "x.jsonl"\ntest_fraction = 0.25\n\n[align_options]\nepochs = 3\n')
    config = medfair.PipelineConfig.from_file(path, test_fraction=0.4)
    assert config.task == "generic"
    assert config.test_fraction == 0.4
    assert config.align_options == {"epochs": 3}
    path.write_text('tsk = "qpain"\n')
    with pytest.raises(medfair.ConfigError, match="unknown pipeline options tsk"):
        medfair.PipelineConfig.from_file(path)
    path.write_text('task = "qpain\n')
    with pytest.raises(medfair.FormatError, match="pipeline.toml"):
        medfair.PipelineConfig.from_file(path)
