"""The ``medfair`` command line.

Each subcommand lives in its own module under ``medfair.commands`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the
function that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Subcommand modules, in the order ``medfair --help`` lists them.
COMMAND_MODULES = [
    "medfair.commands.align",
    "medfair.commands.audit",
    "medfair.commands.demo",
    "medfair.commands.info",
    "medfair.commands.lint_templates",
    "medfair.commands.prefs",
    "medfair.commands.pipeline",
    "medfair.commands.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medfair",
        description="Assess and mitigate counterfactual demographic gaps in clinical LLMs.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")

    import medfair

    try:
        return int(args.func(args) or 0)
    except medfair.Error as error:
        print(f"medfair {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medfair {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
