"""``medfair lint-templates``: check vignette templates before rendering them."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lint-templates",
        help="check templates for unbalanced brackets, unknown slots and demographic words left outside slots",
        description=(
            "Check the templates in Q-Pain or Healer CSV files, generic task files (CSV or JSONL) or plain template "
            "files. Prints FILE:LINE:COL: LEVEL: MESSAGE [CODE] per finding. Exits 1 when there are errors "
            "(with --strict, also when there are warnings), 0 otherwise."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="template files to check")
    parser.add_argument("--strict", action="store_true", help="treat warnings (demographic words, slot mismatches) as errors")
    parser.add_argument(
        "--syntax",
        choices=["native", "qpain", "healer", "any"],
        default="",
        help="slot syntax (default: chosen from the file's columns, else any)",
    )
    parser.add_argument("--attributes", metavar="JSON", help="attribute catalog file (default: the built-in catalog)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import medfair

    catalog = medfair.AttributeCatalog.load(args.attributes) if args.attributes else None
    errors = 0
    warnings = 0
    for path in args.files:
        for issue in medfair.lint_file(path, strict=args.strict, syntax=args.syntax, catalog=catalog):
            print(issue)
            if issue.severity == "error":
                errors += 1
            else:
                warnings += 1
    if errors or warnings:
        print(f"{errors} error(s), {warnings} warning(s) in {len(args.files)} file(s)")
    return 1 if errors else 0
