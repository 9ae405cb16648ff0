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


@pytest.fixture(scope="module")
def reference(tmp_path_factory, vignettes) -> pathlib.Path:
    """An uninterrupted run, with the time it took."""
    out = tmp_path_factory.mktemp("reference")
    started = time.monotonic()
    result = _run(out, vignettes)
    assert result.returncode == 0, result.stderr[-4000:]
    (out / "elapsed").write_text(str(time.monotonic() - started))
    return out


def _kill_at_random(out: pathlib.Path, vignettes: list[str], rng: random.Random, span: float) -> str:
    """Start a run and SIGKILL it a random delay after results.jsonl appears.

    Returns where the kill landed, for the failure message.
    """
    process = subprocess.Popen(_command(out, vignettes), env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not (out / "results.jsonl").exists() and process.poll() is None:
            assert time.monotonic() < deadline, "results.jsonl never appeared"
            time.sleep(0.01)
        delay = rng.uniform(0.0, span)
        time.sleep(delay)
        finished = process.poll() is not None
        if not finished:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = len((out / "results.jsonl").read_text(encoding="utf-8").splitlines()) if (out / "results.jsonl").exists() else 0
    return f"delay {delay:.2f} s, {'finished first' if finished else 'killed'}, {lines} lines on disk"


@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_audit_sigkill_resume(tmp_path, reference, vignettes, seed):
    rng = random.Random(seed)
    # Kill somewhere between the first appended set and the end of a full run.
    span = float((reference / "elapsed").read_text()) * 0.6
    out = tmp_path / "run"
    where = _kill_at_random(out, vignettes, rng, span)
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
