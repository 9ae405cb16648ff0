"""medfair.build_preferences and `medfair prefs` on medfair's own vignettes
with SmolLM2 as target and self teacher, and the output read by datasets."""

from __future__ import annotations

import json
import pathlib

import pytest

import medfair
from medfair.audit import PROJECT_DATA
from medfair.cli import main

PAIN = PROJECT_DATA / "vignettes" / "pain_management.jsonl"
SMALL = dict(max_new_tokens=12, candidates=2, progress=False)


@pytest.fixture(scope="module")
def encoder():
    return medfair.SentenceEncoder.load()


@pytest.fixture(scope="module")
def pain_ids():
    return [v.id for v in medfair.load_generic(str(PAIN)).vignettes]


def test_build_preferences_plain(smollm2, encoder, pain_ids, tmp_path):
    result = medfair.build_preferences(
        target=smollm2, encoder=encoder, task="generic", data=PAIN, out=tmp_path / "prefs.jsonl",
        vignettes=pain_ids[:2], draws_per_vignette=2, **SMALL,
    )
    assert result.prompts == 4
    assert result.written + sum(result.dropped.values()) == 4
    assert result.written > 0
    lines = (tmp_path / "prefs.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.records
    record = result.records[0]
    assert record["teacher"] == "self"
    assert record["teacher_sha256"] == record["target_sha256"]
    assert record["vignette_id"] in pain_ids[:2]
    assert record["chosen_similarity"] >= record["rejected_similarity"]
    frame = result.dataframe
    assert {"prompt", "chosen", "rejected", "race", "gender", "margin"} <= set(frame.columns)
    assert result.cache_path == tmp_path / "prefs.jsonl.cache.sqlite"
    assert len(medfair.GenerationCache(str(result.cache_path))) == 4 * 2 + 2  # candidates + neutral references

    # A rerun resumes every record and generates nothing new.
    again = medfair.build_preferences(
        target=smollm2, encoder=encoder, task="generic", data=PAIN, out=tmp_path / "prefs.jsonl",
        vignettes=pain_ids[:2], draws_per_vignette=2, **SMALL,
    )
    assert again.resumed == result.written
    assert again.records == result.records
    assert len(medfair.GenerationCache(str(result.cache_path))) == 10


@pytest.mark.parametrize("fmt", ["plain", "conversational"])
def test_datasets_loads_output(smollm2, encoder, pain_ids, tmp_path, fmt):
    import datasets
    out = tmp_path / f"{fmt}.jsonl"
    medfair.build_preferences(
        target=smollm2, encoder=encoder, task="generic", data=PAIN, out=out, vignettes=pain_ids[:2],
        format=fmt, drop_identical=False, **SMALL,
    )
    dataset = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert dataset.num_rows == 2
    assert {"prompt", "chosen", "rejected", "attributes", "similarities", "seeds"} <= set(dataset.column_names)
    row = dataset[0]
    if fmt == "plain":
        assert isinstance(row["prompt"], str) and row["prompt"].endswith("<|im_start|>assistant\n")
        assert isinstance(row["chosen"], str)
    else:
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["chosen"][0]["role"] == "assistant"
        assert row["rejected"][0]["role"] == "assistant"


def test_split_vignettes_api(pain_ids):
    train, test = medfair.split_vignettes(pain_ids, 0.5, 0)
    assert sorted(train + test) == sorted(pain_ids)
    assert len(test) == len(pain_ids) // 2
    assert medfair.split_vignettes(pain_ids, 0.5, 0) == (train, test)
    with pytest.raises(medfair.ConfigError, match="test_fraction"):
        medfair.split_vignettes(pain_ids, -0.1, 0)


def test_split_selects_train_side(smollm2, encoder, pain_ids, tmp_path):
    train, _ = medfair.split_vignettes(pain_ids, 0.5, 3)
    result = medfair.build_preferences(
        target=smollm2, encoder=encoder, task="generic", data=PAIN, out=tmp_path / "p.jsonl", split="train",
        split_seed=3, drop_identical=False, **SMALL,
    )
    assert sorted({r["vignette_id"] for r in result.records}) == sorted(train)


def test_teacher_file_and_errors(smollm2, encoder, pain_ids, tmp_path):
    references = tmp_path / "refs.jsonl"
    references.write_text(
        "".join(json.dumps({"vignette_id": v, "reference": "Yes, treat the pain now."}) + "\n" for v in pain_ids)
    )
    result = medfair.build_preferences(
        target=smollm2, teacher=references, encoder=encoder, task="generic", data=PAIN, out=tmp_path / "p.jsonl",
        vignettes=pain_ids[:1], pairing="reference", **SMALL,
    )
    assert result.records[0]["reference"] == "Yes, treat the pain now."
    assert result.records[0]["chosen"] == "Yes, treat the pain now."
    with pytest.raises(medfair.ConfigError, match="not recognised"):
        medfair.build_preferences(target=smollm2, teacher="nonsense", encoder=encoder, task="generic", data=PAIN,
                                  out=tmp_path / "q.jsonl", **SMALL)
    with pytest.raises(medfair.ConfigError, match="needs teacher_model"):
        medfair.build_preferences(target=smollm2, teacher="http://127.0.0.1:9/v1", encoder=encoder, task="generic",
                                  data=PAIN, out=tmp_path / "q.jsonl", **SMALL)
    with pytest.raises(medfair.ConfigError, match="split 'dev'"):
        medfair.build_preferences(target=smollm2, encoder=encoder, task="generic", data=PAIN,
                                  out=tmp_path / "q.jsonl", split="dev", **SMALL)


def test_cli_prefs(tmp_path, capsys, gguf_path, pain_ids):
    out = tmp_path / "cli.jsonl"
    code = main([
        "prefs", "--target", str(gguf_path), "--task", "generic", "--data", str(PAIN), "--out", str(out),
        "--vignettes", pain_ids[0], "--max-new-tokens", "8", "--keep-identical", "--format", "conversational",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "records: 1" in printed
    assert f"preferences: {out}" in printed
    record = json.loads(out.read_text())
    assert record["prompt"][-1]["role"] == "user"


def test_cli_prefs_reports_errors(tmp_path, capsys, gguf_path):
    code = main(["prefs", "--target", str(gguf_path), "--task", "generic", "--data", str(PAIN),
                 "--out", str(tmp_path / "x.jsonl"), "--candidates", "1"])
    assert code == 2
    assert "candidates must be at least 2" in capsys.readouterr().err
