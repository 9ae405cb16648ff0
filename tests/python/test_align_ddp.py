"""Data-parallel training under torchrun on SmolLM2-135M-Instruct.

Two gloo processes on 127.0.0.1 train with batch_size 1 and grad_accumulation
2 each, so every optimiser step covers 4 pairs. One process with
grad_accumulation 4 trains on the same 4 pairs per step, so its step log and
adapter must equal the two-process run's up to floating-point summation
order. A two-process run whose rank 0 is killed after step 2 must resume from
its step-1 checkpoint and end with the same log and adapter. medfair.align
runs the all-reduce in C++ over torch.distributed's process group, and a
two-process run with a Python all_reduce_sum callable must match it. Dropout
is 0, because each rank draws its own dropout masks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from align_support import vignette_records, write_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Short pairs (the last 40 prompt tokens, 64 tokens in all) keep a step at a few
# seconds on two CPU cores.
COMMON = ["--max-steps", "2", "--batch-size", "1", "--lr", "1e-3", "--warmup-ratio", "0", "--lora-dropout", "0",
          "--max-length", "64", "--max-prompt-length", "40", "--checkpoint-every", "1"]

KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import medfair

    def progress(step, total):
        if step["step"] == 2 and os.environ["RANK"] == "0":
            os.kill(os.getpid(), signal.SIGKILL)

    medfair.align(model=sys.argv[1], prefs=sys.argv[2], out=sys.argv[3], max_steps=2, batch_size=1,
                  grad_accumulation=2, learning_rate=1e-3, warmup_ratio=0.0, lora_dropout=0.0, max_length=64,
                  max_prompt_length=40, checkpoint_every=1, progress=progress)
    """
)


CALLABLE_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch.distributed as dist
    import medfair
    from medfair.align import trainer_options

    def all_reduce_sum(tensors):
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    dist.init_process_group("gloo")
    model = medfair.CausalLM.load(sys.argv[1])
    options = trainer_options(max_steps=2, batch_size=1, grad_accumulation=2, learning_rate=1e-3, warmup_ratio=0.0,
                              lora_dropout=0.0, max_length=64, max_prompt_length=40, checkpoint_every=1)
    trainer = medfair._core.SimPOTrainer(model, options)
    trainer.set_data_parallel(dist.get_rank(), dist.get_world_size(), all_reduce_sum)
    trainer.train(medfair._core.read_preference_file(sys.argv[2], model), sys.argv[3])
    dist.barrier()
    dist.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment() -> dict:
    # One thread per process in both the one- and two-process runs, as
    # torchrun sets by default, so the matrix products sum in the same order.
    return dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")


def torchrun(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), *map(str, args)]
    return subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=600)


def read_log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_adapter(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def runs(gguf_path, tmp_path_factory):
    """The two-process run and the one-process run with the combined batch."""
    folder = tmp_path_factory.mktemp("ddp")
    prefs = write_jsonl(folder / "prefs.jsonl", vignette_records(8))
    parallel = torchrun("-m", "medfair", "align", "--model", gguf_path, "--prefs", prefs, "--out", folder / "parallel",
                   "--grad-accum", "2", *COMMON)
    assert parallel.returncode == 0, parallel.stderr[-4000:]
    single = subprocess.run([sys.executable, "-m", "medfair", "align", "--model", str(gguf_path), "--prefs", str(prefs),
                          "--out", str(folder / "single"), "--grad-accum", "4", *COMMON],
                         env=environment(), capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-4000:]
    return folder, prefs, parallel


def test_ddp_log_matches_one_process(runs):
    folder, _, parallel = runs
    parallel_log = read_log(folder / "parallel" / "train_log.jsonl")
    single_log = read_log(folder / "single" / "train_log.jsonl")
    # Rank 1 writes nothing, so the log has one line per step.
    assert [row["step"] for row in parallel_log] == [1, 2]
    assert parallel.stdout.count("steps: 2") == 1
    for expected, found in zip(single_log, parallel_log):
        for key in ("loss", "chosen_reward", "rejected_reward", "reward_accuracy", "grad_norm"):
            assert found[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (key, expected, found)
        assert found["tokens"] == expected["tokens"]
        assert found["learning_rate"] == expected["learning_rate"]
    # The second step must have moved the loss, or equality proves little.
    assert abs(parallel_log[1]["loss"] - parallel_log[0]["loss"]) > 1e-4
    settings = json.loads((folder / "parallel" / "align_settings.json").read_text())
    assert settings["world_size"] == 2


def test_ddp_adapter_matches_one_process(runs):
    folder, _, _ = runs
    parallel = read_adapter(folder / "parallel")
    single = read_adapter(folder / "single")
    assert set(parallel) == set(single)
    # The gradients differ only in summation order, but AdamW divides each
    # element by sqrt(v) + eps, which magnifies the rounding of elements whose
    # gradient is near zero (A's gradient is exactly zero in step 1, while B
    # starts at zero). So a few elements may move by up to 1% of the learning
    # rate (1e-3), and nearly all must agree to 1e-6.
    differences = torch.cat([(parallel[name] - expected).abs().reshape(-1) for name, expected in single.items()])
    assert differences.max().item() < 1e-5
    assert (differences > 1e-6).float().mean().item() < 1e-3
    moved = [name for name, tensor in single.items() if ".lora_B." in name and tensor.abs().max().item() > 1e-4]
    assert len(moved) == len(single) // 2


def test_ddp_resume_after_kill(runs, gguf_path):
    folder, prefs, _ = runs
    script = folder / "kill_rank0.py"
    script.write_text(KILL_SCRIPT)
    killed = torchrun(script, gguf_path, prefs, folder / "killed")
    assert killed.returncode != 0
    state = json.loads((folder / "killed" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 1
    assert state["fingerprint"]["options"]["world_size"] == 2

    resumed = torchrun("-m", "medfair", "align", "--model", gguf_path, "--prefs", prefs, "--out",
                       folder / "killed", "--grad-accum", "2", *COMMON, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resumed from 1" in resumed.stdout
    full = read_log(folder / "parallel" / "train_log.jsonl")
    again = read_log(folder / "killed" / "train_log.jsonl")
    assert [row["step"] for row in again] == [1, 2]
    for expected, found in zip(full, again):
        assert found["loss"] == pytest.approx(expected["loss"], rel=1e-6), (expected, found)
    for name, expected in read_adapter(folder / "parallel").items():
        torch.testing.assert_close(read_adapter(folder / "killed")[name], expected, rtol=1e-6, atol=1e-7, msg=name)


def test_ddp_python_collective_matches(runs, gguf_path):
    folder, prefs, _ = runs
    script = folder / "python_collective.py"
    script.write_text(CALLABLE_SCRIPT)
    done = torchrun(script, gguf_path, prefs, folder / "callable")
    assert done.returncode == 0, done.stderr[-4000:]
    expected = read_log(folder / "parallel" / "train_log.jsonl")
    found = read_log(folder / "callable" / "train_log.jsonl")
    assert [row["step"] for row in found] == [1, 2]
    for before, after in zip(expected, found):
        assert after["loss"] == pytest.approx(before["loss"], rel=1e-6), (before, after)
        assert after["grad_norm"] == pytest.approx(before["grad_norm"], rel=1e-6), (before, after)
    for name, tensor in read_adapter(folder / "parallel").items():
        torch.testing.assert_close(read_adapter(folder / "callable")[name], tensor, rtol=1e-6, atol=1e-7, msg=name)
