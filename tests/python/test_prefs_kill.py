"""Crash safety of ``medfair prefs``: SIGKILL part way, then rerun.

A run killed after some records were appended and then rerun with the same
--out must keep the records already written and end with a file equal, byte
for byte, to an uninterrupted run's.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from medfair.audit import PROJECT_DATA

REPO = pathlib.Path(__file__).resolve().parents[2]
PAIN = PROJECT_DATA / "vignettes" / "pain_management.jsonl"
# Seconds after the first appended record at which each run is killed.
KILL_DELAYS = [0.0, 1.5]


def _command(out: pathlib.Path, gguf: pathlib.Path) -> list[str]:
    return [
        sys.executable, "-m", "medfair", "prefs", "--target", str(gguf), "--task", "generic", "--data", str(PAIN),
        "--split", "all", "--out", str(out), "--draws", "1", "--max-new-tokens", "12", "--prompts-per-step", "2",
        "--keep-identical",
    ]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "python"))


def _run(out: pathlib.Path, gguf: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(_command(out, gguf), env=_env(), capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, gguf_path) -> bytes:
    out = tmp_path_factory.mktemp("prefs_reference") / "prefs.jsonl"
    done = _run(out, gguf_path)
    assert done.returncode == 0, done.stderr
    text = out.read_bytes()
    assert text.count(b"\n") == 8
    return text


@pytest.mark.parametrize("delay", KILL_DELAYS)
def test_killed_run_resumes_identically(tmp_path, gguf_path, reference, delay):
    out = tmp_path / "prefs.jsonl"
    process = subprocess.Popen(_command(out, gguf_path), env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while process.poll() is None and not (out.exists() and out.stat().st_size > 0):
        assert time.monotonic() < deadline, "no record was ever appended"
        time.sleep(0.02)
    time.sleep(delay)
    if process.poll() is not None:
        pytest.fail("the run finished before it could be killed; give it more prompts")
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = out.read_bytes()
    assert partial.count(b"\n") < 8

    resumed = _run(out, gguf_path)
    assert resumed.returncode == 0, resumed.stderr
    kept = int(re.search(r"resumed: (\d+)", resumed.stdout).group(1))
    assert kept >= 1
    assert kept == partial.count(b"\n")  # every complete line; a torn one has no newline
    assert out.read_bytes() == reference
