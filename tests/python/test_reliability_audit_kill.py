"""Crash safety of ``medfair audit``: SIGKILL at random points, then resume.

Each run audits the first few Q-Pain vignettes of the shared data with
SmolLM2-135M in a child process (``python -c`` over ``medfair.audit``, because
the CLI has no vignette filter). A killed run that is rerun with the same
folder must end with the same results.jsonl records and summary.json
"questions" as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = pathlib.Path(os.environ.get("MEDFAIR_SHARED_DATA", REPO.parent / "shared" / "data"))
VIGNETTE_COUNT = 3
BOOTSTRAP = 200
KILL_SEEDS = [11, 23, 37, 41]
# Seconds from the first appended set to the end of each reference run.
SPAN: dict[pathlib.Path, float] = {}

CHILD = """
import json, logging, sys
import medfair
logging.basicConfig(level=logging.WARNING)
data, out, vignettes, bootstrap = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
medfair.audit(task="qpain", data=data, out=out, vignettes=vignettes, bootstrap_replicates=bootstrap, progress=False)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "python"))


def _command(out: pathlib.Path, vignettes: list[str]) -> list[str]:
    return [sys.executable, "-c", CHILD, str(DATA / "qpain"), str(out), json.dumps(vignettes), str(BOOTSTRAP)]


def _run(out: pathlib.Path, vignettes: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(_command(out, vignettes), env=_env(), capture_output=True, text=True, timeout=900,
                          check=False)


def _records(out: pathlib.Path) -> list[dict]:
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def _questions(out: pathlib.Path) -> object:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))["questions"]


@pytest.fixture(scope="module")
def vignettes() -> list[str]:
    import medfair

    task = medfair._core.load_task("qpain", str(DATA / "qpain"))
    return [vignette.id for vignette in task.vignettes][:VIGNETTE_COUNT]


def _start(out: pathlib.Path, vignettes: list[str]) -> subprocess.Popen:
    return subprocess.Popen(_command(out, vignettes), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_results(process: subprocess.Popen, out: pathlib.Path) -> float:
    """Wait until results.jsonl exists (or the process ends); return the time."""
    deadline = time.monotonic() + 600
    while not (out / "results.jsonl").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "results.jsonl never appeared"
        time.sleep(0.01)
    return time.monotonic()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, vignettes) -> pathlib.Path:
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    process = _start(out, vignettes)
    first_set = _wait_for_results(process, out)
    _, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-4000:]
    SPAN[out] = time.monotonic() - first_set
    return out


def _line_count(path: pathlib.Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def _kill_at_random(out: pathlib.Path, vignettes: list[str], lines_before: int, delay: float) -> tuple[bool, str]:
    """Start a run and SIGKILL it `delay` seconds after results.jsonl holds `lines_before` lines.

    Waiting for progress rather than for a fixed time keeps the kill inside
    the run however fast the machine is. Returns whether the kill landed
    before the run ended, and a description for failure messages.
    """
    process = _start(out, vignettes)
    results = out / "results.jsonl"
    try:
        deadline = time.monotonic() + 900
        while _line_count(results) < lines_before and process.poll() is None:
            assert time.monotonic() < deadline, f"results.jsonl never reached {lines_before} lines"
            time.sleep(0.01)
        time.sleep(delay)
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return killed, f"killed {delay:.2f} s after {lines_before} lines, {_line_count(results)} lines on disk"


@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_audit_sigkill_resume(tmp_path, reference, vignettes, seed):
    # Kill after one or two of the three counterfactual sets, a random part of
    # the way into the next one, so the kill lands mid-run and often mid-set.
    rng = random.Random(seed)
    lines_per_set = len(_records(reference)) // VIGNETTE_COUNT
    sets_done = rng.choice([1, 2])
    seconds_per_set = SPAN[reference] / (VIGNETTE_COUNT - 1)
    delay = rng.uniform(0.0, 0.5 * seconds_per_set)
    out = tmp_path / "run"
    killed, where = _kill_at_random(out, vignettes, sets_done * lines_per_set, delay)
    if not killed:
        # The machine sped up past the measured span: kill right at the boundary.
        shutil.rmtree(out)
        killed, where = _kill_at_random(out, vignettes, sets_done * lines_per_set, 0.0)
    assert killed, f"the run ended before the kill ({where}); the test did not interrupt it"
    result = _run(out, vignettes)
    assert result.returncode == 0, f"{where}: {result.stderr[-4000:]}"
    assert _records(out) == _records(reference), where
    assert _questions(out) == _questions(reference), where


def test_audit_torn_last_line(tmp_path, reference, vignettes):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    results = out / "results.jsonl"
    text = results.read_bytes()
    last_start = text.rstrip(b"\n").rfind(b"\n") + 1
    results.write_bytes(text[: last_start + (len(text) - last_start) // 2])
    (out / "summary.json").unlink()

    result = _run(out, vignettes)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "dropping the torn last line" in result.stderr
    assert _records(out) == _records(reference)
    assert _questions(out) == _questions(reference)


def test_audit_damaged_middle_line(tmp_path, reference, vignettes):
    import medfair

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    results = out / "results.jsonl"
    lines = results.read_text(encoding="utf-8").splitlines(keepends=True)
    middle = len(lines) // 2
    lines[middle] = lines[middle][: len(lines[middle]) // 2] + "\n"
    results.write_text("".join(lines), encoding="utf-8")

    with pytest.raises(medfair.FormatError) as error:
        medfair.audit(task="qpain", data=str(DATA / "qpain"), out=str(out), vignettes=vignettes,
                      bootstrap_replicates=BOOTSTRAP, progress=False)
    message = str(error.value)
    assert f"results.jsonl:{middle + 1}: invalid JSON record" in message
    assert "damaged beyond a torn last line, so move it away and rerun the audit" in message
