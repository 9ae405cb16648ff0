"""``medfair info``: print versions and the default model files."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="print versions and where the default models are")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    import medfair

    print(f"medfair {medfair.__version__}")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    return 0
