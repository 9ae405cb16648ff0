"""``medfair lint-templates`` on real and hand-written files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DATA = Path(os.environ.get("MEDFAIR_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
REPO = Path(__file__).resolve().parents[2]


def run_lint(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    return subprocess.run([sys.executable, "-m", "medfair", "lint-templates", *args], capture_output=True, text=True,
                          env=env, check=False)


def test_lint_healer_warns():
    result = run_lint(str(DATA / "healer" / "ED_cases.csv"))
    assert result.returncode == 0, result.stderr
    line = result.stdout.splitlines()[0]
    assert line.endswith("[demographic-leak]")
    assert "ED_cases.csv:2:165: warning: demographic word \"his\"" in line


def test_lint_strict_fails():
    result = run_lint("--strict", str(DATA / "healer" / "ED_cases.csv"))
    assert result.returncode == 1
    assert ": error: demographic word \"his\"" in result.stdout


def test_lint_errors_exit_nonzero(tmp_path):
    template = tmp_path / "case.txt"
    template.write_text("A {race} {gender} with {colour} skin\nand [race pain.\n", encoding="utf-8")
    result = run_lint(str(template))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{template}:1:24: error: unknown slot {{colour}}" in lines[0]
    assert any(f"{template}:2:5: error: '[' without a matching ']'" in line for line in lines)


def test_lint_clean_vignettes():
    files = sorted(str(path) for path in (REPO / "python" / "medfair" / "data" / "vignettes").glob("*.jsonl"))
    assert files
    result = run_lint("--strict", *files)
    assert result.returncode == 0, result.stdout
    assert result.stdout == ""
