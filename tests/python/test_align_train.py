"""Training runs of medfair.align on a small random Llama.

The preference records are built from the project's vignettes. The tests
check that training lowers the loss, that the written adapter loads back, that
a run killed with SIGKILL and resumed logs the same steps as an uninterrupted
run, and the error messages of bad input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from align_support import small_llama, vignette_records, write_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def model_dir(hf_reference, tmp_path_factory):
    _, tokenizer = hf_reference
    folder = tmp_path_factory.mktemp("train_llama")
    small_llama().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def prefs_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("prefs") / "prefs.jsonl", vignette_records(8))


def test_align_lowers_loss(model_dir, prefs_file, tmp_path):
    import medfair

    steps = []
    result = medfair.align(model=str(model_dir), prefs=prefs_file, out=tmp_path / "run", max_steps=12, batch_size=4,
                           grad_accumulation=1, learning_rate=2e-3, warmup_ratio=0.0, lora_dropout=0.0,
                           progress=lambda step, total: steps.append((step["step"], total)))
    log = result.log
    assert list(log["step"]) == list(range(1, 13))
    assert steps == [(i, 12) for i in range(1, 13)]
    assert {"loss", "reward_margin", "reward_accuracy", "learning_rate", "tokens_per_second"} <= set(log.columns)
    assert log["loss"].iloc[-2:].mean() < log["loss"].iloc[:2].mean() - 0.05
    assert log["reward_accuracy"].iloc[-1] == 1.0
    assert result.truncation["pairs"] == 8

    settings = json.loads((tmp_path / "run" / "align_settings.json").read_text())
    assert settings["options"]["method"] == "simpo"
    assert settings["options"]["max_steps"] == 12

    base = medfair.CausalLM.load(str(model_dir))
    aligned = medfair.CausalLM.load(str(model_dir), adapter=str(tmp_path / "run"))
    assert aligned.lora_options.r == 16
    ids = torch.tensor([[1, 9690, 198, 2683, 314, 253]])
    assert (aligned.logits(ids) - base.logits(ids)).abs().max().item() > 1e-3


def test_align_dpo_runs(model_dir, prefs_file, tmp_path):
    import medfair

    result = medfair.align(model=str(model_dir), prefs=prefs_file, out=tmp_path / "dpo", method="dpo", max_steps=6,
                           batch_size=4, grad_accumulation=1, learning_rate=2e-3, warmup_ratio=0.0,
                           lora_dropout=0.0, progress=False)
    log = result.log
    assert result.settings["options"]["beta"] == 0.1
    # The adapters start with B = 0, so the policy equals the reference and
    # the first step's DPO loss is log 2 with zero rewards.
    assert abs(log["loss"].iloc[0] - 0.6931472) < 1e-5
    assert abs(log["reward_margin"].iloc[0]) < 1e-6
    assert log["reward_margin"].iloc[-1] > 0.0


RUN_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import medfair

    kill_at = int(sys.argv[4])

    def progress(step, total):
        if step["step"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    medfair.align(model=sys.argv[1], prefs=sys.argv[2], out=sys.argv[3], max_steps=8, batch_size=2,
                  grad_accumulation=2, learning_rate=1e-3, lora_dropout=0.1, checkpoint_every=2,
                  resume=kill_at == 0, progress=progress)
    """
)


def run_script(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    return subprocess.run([sys.executable, "-c", RUN_SCRIPT, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600)


def read_log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_align_resume_after_kill(model_dir, prefs_file, tmp_path):
    # Uninterrupted run.
    done = run_script(model_dir, prefs_file, tmp_path / "full", -1)
    assert done.returncode == 0, done.stderr
    # Killed after step 5, which follows the checkpoint of step 4.
    killed = run_script(model_dir, prefs_file, tmp_path / "killed", 5)
    assert killed.returncode == -9
    assert len(read_log(tmp_path / "killed" / "train_log.jsonl")) == 5
    state = json.loads((tmp_path / "killed" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4
    # A line torn by the kill must not block the resume.
    with open(tmp_path / "killed" / "train_log.jsonl", "a", encoding="utf-8") as log:
        log.write('{"step": 6, "loss": 0.')
    # Resumed through the command line.
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    resumed = subprocess.run(
        [sys.executable, "-m", "medfair", "align", "--model", str(model_dir), "--prefs", str(prefs_file), "--out",
         str(tmp_path / "killed"), "--max-steps", "8", "--batch-size", "2", "--grad-accum", "2", "--lr", "1e-3",
         "--lora-dropout", "0.1", "--checkpoint-every", "2", "--resume"],
        env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from 4" in resumed.stdout

    full = read_log(tmp_path / "full" / "train_log.jsonl")
    again = read_log(tmp_path / "killed" / "train_log.jsonl")
    assert [row["step"] for row in again] == list(range(1, 9))
    for expected, found in zip(full, again):
        assert abs(expected["loss"] - found["loss"]) < 1e-6, (expected, found)
        assert abs(expected["reward_margin"] - found["reward_margin"]) < 1e-6
        assert expected["learning_rate"] == found["learning_rate"]


def short_run(model, prefs, out, **options):
    import medfair

    settings = dict(max_steps=2, batch_size=4, grad_accumulation=1, checkpoint_every=1, progress=False)
    settings.update(options)
    return medfair.align(model=str(model), prefs=prefs, out=out, **settings)


def test_align_resume_rejects_other_options(model_dir, prefs_file, tmp_path):
    import medfair

    short_run(model_dir, prefs_file, tmp_path / "run")
    with pytest.raises(medfair.ConfigError, match=r"written with other options \(max_steps was 2, now 3\)"):
        short_run(model_dir, prefs_file, tmp_path / "run", max_steps=3, resume=True)
    with pytest.raises(medfair.ConfigError, match=r"other options \(lora_r was 16, now 8\); .*drop --resume"):
        short_run(model_dir, prefs_file, tmp_path / "run", lora_r=8, resume=True)


def test_align_resume_rejects_other_data(model_dir, prefs_file, tmp_path):
    import medfair

    short_run(model_dir, prefs_file, tmp_path / "run")
    # The same number of pairs with other text: only the token hash differs.
    other = write_jsonl(tmp_path / "other.jsonl", vignette_records(8, conversational=False))
    with pytest.raises(medfair.ConfigError,
                       match=r"written with other preference data \(token_ids_fnv1a was \"[0-9a-f]{16}\", now"):
        short_run(model_dir, other, tmp_path / "run", resume=True)
    # The same pairs cut by another length limit are other data too.
    with pytest.raises(medfair.ConfigError, match="other preference data"):
        short_run(model_dir, prefs_file, tmp_path / "run", max_length=48, max_prompt_length=24, resume=True)


def test_align_resume_rejects_other_model(model_dir, prefs_file, hf_reference, tmp_path):
    import medfair

    short_run(model_dir, prefs_file, tmp_path / "run")
    # Same architecture and tokenizer, other weights: the checkpoint's adapter
    # would load, so only the fingerprint can catch it.
    other_dir = tmp_path / "other_llama"
    small_llama(tie=True).save_pretrained(other_dir)
    hf_reference[1].save_pretrained(other_dir)
    with pytest.raises(medfair.ConfigError,
                       match=r"written with another base model \(sha256 was \"[0-9a-f]{64}\", now \"[0-9a-f]{64}\"\)"):
        short_run(other_dir, prefs_file, tmp_path / "run", resume=True)
    with pytest.raises(medfair.ConfigError, match=r"another base model \(dtype was \"float32\", now \"bfloat16\"\)"):
        short_run(model_dir, prefs_file, tmp_path / "run", dtype="bfloat16", resume=True)


def test_align_step_log_is_whole_lines(model_dir, prefs_file, tmp_path):
    result = short_run(model_dir, prefs_file, tmp_path / "run", max_steps=3)
    text = result.log_path.read_text()
    assert text.endswith("\n")
    assert [json.loads(line)["step"] for line in text.splitlines()] == [1, 2, 3]


def test_align_input_errors(model_dir, tmp_path):
    import medfair

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Q", "chosen": "A"}) + "\n")
    with pytest.raises(medfair.DataError, match=r"bad.jsonl, line 1: the record has no \"rejected\""):
        medfair.align(model=str(model_dir), prefs=bad, out=tmp_path / "run", progress=False)
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"prompt": "Q", "chosen": [{"role": "assistant", "content": "A"}],
                                 "rejected": "B"}) + "\n")
    with pytest.raises(medfair.DataError, match="must be strings too"):
        medfair.align(model=str(model_dir), prefs=mixed, out=tmp_path / "run", progress=False)
    with pytest.raises(medfair.ConfigError, match="unknown training preset \"fast\""):
        medfair.align(model=str(model_dir), prefs=bad, out=tmp_path / "run", preset="fast", progress=False)
    with pytest.raises(medfair.ConfigError, match="TrainerOptions.batch_size is 0"):
        medfair.align(model=str(model_dir), prefs=bad, out=tmp_path / "run", batch_size=0, progress=False)


def test_align_presets():
    import medfair

    simpo = medfair.TrainerOptions.preset("simpo")
    assert (simpo.beta, simpo.gamma_beta_ratio) == (2.0, 0.5)
    notebook = medfair.TrainerOptions.preset("notebook")
    assert (notebook.beta, notebook.max_length, notebook.lora.r, notebook.lora.alpha) == (0.1, 256, 18, 32.0)
    assert notebook.lora.dropout == 0.0
    assert len(notebook.lora.target_modules) == 7
    assert abs(notebook.gamma_beta_ratio * notebook.beta - 0.5) < 1e-12
