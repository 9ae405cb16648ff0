"""``medfair report``: write the HTML report of one audit run, or compare two."""

from __future__ import annotations

import argparse
import pathlib


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write a self-contained HTML report of an audit run, or compare two runs",
        description="With one run folder, write its report (default RUN/report.html). With two, write a "
                    "comparison of BEFORE and AFTER with a paired test of the per-vignette gap change "
                    "(default AFTER/comparison.html).")
    parser.add_argument("run", type=pathlib.Path, help="run folder written by `medfair audit` (BEFORE when comparing)")
    parser.add_argument("run2", type=pathlib.Path, nargs="?", help="second run folder (AFTER) to compare with RUN")
    parser.add_argument("--out", type=pathlib.Path, help="HTML file to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medfair import report

    if args.run2 is None:
        written = report.render_report(args.run, args.out)
    else:
        out = args.out if args.out is not None else args.run2 / report.COMPARISON_FILE
        written = report.render_comparison(args.run, args.run2, out)
    print(written)
    return 0
