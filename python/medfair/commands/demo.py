"""``medfair demo``: audit the default model on the vignettes shipped with medfair."""

from __future__ import annotations

import argparse
import pathlib

from medfair.audit import PROJECT_DATA

DEMO_TASKS = ["pain_management", "triage", "referral"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="audit SmolLM2-135M-Instruct on medfair's own clinical vignettes and write reports",
        description="Runs `medfair audit` with the default model on each vignette file shipped in "
        "medfair/data/vignettes (pain management, triage, referral), writing one run folder and report per task.",
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("demo"), help="output folder (default: demo)")
    parser.add_argument("--model", default=None, help="a .gguf file or Hugging Face folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates per interval (default: 1000)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medfair import CausalLM
    from medfair._defaults import default_model_path
    from medfair.audit import audit
    from medfair.commands.audit import print_summary
    from medfair.report import render_report

    model = CausalLM.load(args.model or default_model_path())
    reports = []
    for name in DEMO_TASKS:
        data = PROJECT_DATA / "vignettes" / f"{name}.jsonl"
        print(f"\n== {name}: {data}")
        result = audit(model=model, task="generic", data=data, out=args.out / name, bootstrap_replicates=args.bootstrap)
        print_summary(result)
        reports.append(render_report(args.out / name))
    print("\nreports:")
    for path in reports:
        print(f"  {path}")
    return 0
