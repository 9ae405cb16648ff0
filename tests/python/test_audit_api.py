"""medfair.audit() and `medfair audit` on two real Q-Pain vignettes."""

from __future__ import annotations

import json
import math

import pytest

from conftest import shared_data_dir


@pytest.fixture(scope="module")
def two_vignette_audit(smollm2, tmp_path_factory):
    import medfair

    data = shared_data_dir() / "qpain"
    task = medfair.load_task("qpain", str(data))
    ids = [task.vignettes[0].id, task.vignettes[11].id]
    out = tmp_path_factory.mktemp("audit")
    report = medfair.audit(model=smollm2, task=task, data=data, out=out, vignettes=ids, bootstrap_replicates=100,
                           progress=False)
    return report, ids


def test_audit_writes_every_record(two_vignette_audit):
    report, ids = two_vignette_audit
    assert len(report.records) == 2 * 8 * 2  # vignettes x race-gender cells x (decision, dose)
    assert {r["vignette_id"] for r in report.records} == set(ids)
    for record in report.records:
        assert math.isclose(sum(record["probabilities"]), 1.0, abs_tol=1e-9)
        assert 0 < record["coverage"] <= 1 + 1e-9
        assert record["predicted"] in record["options"]
    lines = (report.out_dir / "results.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == report.records


def test_audit_summary_has_provenance(two_vignette_audit, gguf_path):
    report, _ = two_vignette_audit
    summary = json.loads((report.out_dir / "summary.json").read_text())
    settings = summary["settings"]
    assert settings["model"] == str(gguf_path)
    assert len(settings["model_sha256"]) == 64
    assert settings["task"] == "qpain"
    assert settings["n_prompts"] == 16
    assert len(settings["data_files"]) == 5
    assert all(len(f["sha256"]) == 64 for f in settings["data_files"])
    assert set(summary["questions"]) == {"decision", "dose"}
    assert summary["questions"]["decision"]["options"] == ["Yes", "No"]


def test_audit_dataframes(two_vignette_audit):
    report, _ = two_vignette_audit
    groups = report.groups()
    assert len(groups) == 8
    assert groups["p/Yes/mean"].between(0, 1).all()
    results = report.results
    assert {"race", "gender", "p_Yes", "p_No"} <= set(results.columns)
    gap = report.max_gap()
    assert gap["option"] == "Yes"
    assert gap["value"] == pytest.approx(groups["p/Yes/mean"].max() - groups["p/Yes/mean"].min(), abs=1e-12)


def test_audit_cli_prints_table_and_report(tmp_path, capsys):
    import medfair
    from medfair.cli import main

    data = shared_data_dir() / "healer"
    ids = ",".join(v.id for v in medfair.load_task("healer", str(data)).vignettes[:2])
    code = main(["audit", "--task", "healer", "--data", str(data), "--out", str(tmp_path), "--bootstrap", "50",
                 "--vignettes", ids])
    output = capsys.readouterr().out
    assert code == 0
    assert "max gap" in output
    assert (tmp_path / "report.html").exists()
    assert (tmp_path / "summary.json").exists()


def test_audit_cli_unknown_task(tmp_path, capsys):
    from medfair.cli import main

    code = main(["audit", "--task", "radiology", "--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "radiology" in capsys.readouterr().err
