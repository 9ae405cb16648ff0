"""``medfair demo``: the whole pipeline on the vignettes shipped with medfair."""

from __future__ import annotations

import argparse
import pathlib

from medfair.audit import PROJECT_DATA

# The pipeline trains on part of the pain-management vignettes and audits the
# rest; the triage and referral vignettes show whether the change carries over.
DEMO_TASK = "pain_management"
TRANSFER_TASKS = ["triage", "referral"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the audit-align-audit pipeline with SmolLM2-135M-Instruct on medfair's own vignettes",
        description="Runs `medfair pipeline` with the packaged SmolLM2-135M-Instruct as target and teacher and "
        "all-MiniLM-L6-v2 for ranking, on the pain-management vignettes shipped in medfair/data/vignettes, and "
        "audits the triage and referral vignettes before and after. Rerunning with the same --out resumes.",
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("demo"), help="run folder (default: demo)")
    parser.add_argument("--model", default=None, help="a .gguf file or Hugging Face folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--bootstrap", type=int, default=500, help="bootstrap replicates per interval (default: 500)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medfair.pipeline import PipelineConfig, pipeline, print_comparison

    folder = PROJECT_DATA / "vignettes"
    config = PipelineConfig(
        model=args.model,
        task="generic",
        data=str(folder / f"{DEMO_TASK}.jsonl"),
        test_fraction=0.5,
        bootstrap_replicates=args.bootstrap,
        draws_per_vignette=8,
        max_new_tokens=64,
        eval_tasks={name: str(folder / f"{name}.jsonl") for name in TRANSFER_TASKS},
        align_options={"epochs": 3, "learning_rate": 2e-4},
    )
    result = pipeline(config, out=args.out)
    print()
    print_comparison(result.comparison)
    print(f"\nreport: {result.report_path}")
    for name in TRANSFER_TASKS:
        print(f"transfer report ({name}): {args.out / 'transfer' / name / 'report.html'}")
    return 0
