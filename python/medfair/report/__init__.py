"""Self-contained HTML reports of audit runs: one run, or two runs side by side.

The pages load nothing from the network: CSS is inline, charts are inline SVG
built here, and there is no script. Every number comes from the run's
summary.json (written by the C++ stats layer) or results.jsonl, and the
comparison's paired test comes from medfair.stats.compare_vignette_gaps.
"""

from __future__ import annotations

import pathlib

from .compare import render_comparison_page
from .runs import Run, load_run
from .single import render_single

REPORT_FILE = "report.html"
COMPARISON_FILE = "comparison.html"


def _write(text: str, out_path: pathlib.Path) -> pathlib.Path:
    import medfair

    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise medfair.IOError(f"{out_path}: cannot write the report ({error.strerror}); "
                              "pass --out with a writable path") from None
    return out_path


def _render(render, *runs: Run) -> str:
    """Call `render`, turning a key or type the loader did not check into a DataError naming the files."""
    import medfair

    try:
        return render(*runs)
    except (KeyError, TypeError, IndexError, ValueError) as error:
        files = " and ".join(str(run.folder / "summary.json") for run in runs)
        raise medfair.DataError(f"{files}: missing or invalid value ({type(error).__name__}: {error}); "
                                "rerun `medfair audit` to write the run folder again") from None


def render_report(run_dir: str | pathlib.Path, out_path: str | pathlib.Path | None = None) -> pathlib.Path:
    """Write the report of one run to `out_path` (default RUN/report.html) and return its path."""
    run = load_run(run_dir)
    target = pathlib.Path(out_path) if out_path is not None else run.folder / REPORT_FILE
    return _write(_render(render_single, run), target)


def render_comparison(before_dir: str | pathlib.Path, after_dir: str | pathlib.Path,
                      out_path: str | pathlib.Path) -> pathlib.Path:
    """Write the comparison of two runs of the same vignettes to `out_path` and return its path."""
    before, after = load_run(before_dir), load_run(after_dir)
    return _write(_render(render_comparison_page, before, after), pathlib.Path(out_path))


__all__ = ["COMPARISON_FILE", "REPORT_FILE", "Run", "load_run", "render_comparison", "render_report"]
