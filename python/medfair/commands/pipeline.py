"""``medfair pipeline``: audit, build preferences, align and audit again."""

from __future__ import annotations

import argparse
import pathlib


def register(subparsers: argparse._SubParsersAction) -> None:
    from medfair.pipeline import STAGES

    parser = subparsers.add_parser(
        "pipeline",
        help="audit a model, align it on preference pairs and audit it again",
        description="Splits the vignettes into train and test, audits the target on the test split, builds "
        "preference pairs on the train split, trains a LoRA adapter with SimPO (or DPO), audits the aligned model "
        "on the test split and writes a before/after report. Rerunning with the same --out resumes; --from "
        "reruns from a stage.",
    )
    parser.add_argument("--config", type=pathlib.Path, default=None,
                        help="TOML or JSON file of pipeline options; command-line options override it")
    parser.add_argument("--model", default=None, help="target .gguf file or Hugging Face folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--teacher", default=None,
                        help="'self' (default), a model path, an http(s) endpoint or a .jsonl file of references")
    parser.add_argument("--teacher-model", default=None, help="served model name of an endpoint teacher")
    parser.add_argument("--teacher-sees", default=None, choices=["neutral", "modified"],
                        help="the teacher answers the attribute-free vignette (default) or the target's prompt")
    parser.add_argument("--encoder", default=None, help="sentence encoder folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--task", default=None, help="qpain, nurse, healer or generic (default: qpain)")
    parser.add_argument("--data", default=None, help="folder or file with the task's vignettes")
    parser.add_argument("--test-fraction", type=float, default=None, help="share of vignettes held out (default: 0.5)")
    parser.add_argument("--split-seed", type=int, default=None, help="seed of the train/test split (default: 0)")
    parser.add_argument("--prompting", default=None, choices=["zero-shot", "few-shot", "cot"], help="audit prompt format")
    parser.add_argument("--method", default=None, choices=["simpo", "dpo"], help="preference loss (default: simpo)")
    parser.add_argument("--preset", default=None, help="training preset of medfair align (default: its defaults)")
    parser.add_argument("--candidates", type=int, default=None, help="target answers per prompt (default: 2)")
    parser.add_argument("--pairing", default=None, choices=["ranked", "reference"], help="preference pairing (default: reference)")
    parser.add_argument("--draws", type=int, default=None, dest="draws_per_vignette",
                        help="random attribute draws per train vignette (default: 1)")
    parser.add_argument("--bootstrap", type=int, default=None, dest="bootstrap_replicates",
                        help="bootstrap replicates per interval (default: 1000)")
    parser.add_argument("--eval-tasks", default="",
                        help="other tasks to audit before and after, e.g. nurse,healer or nurse=PATH")
    parser.add_argument("--from", dest="from_stage", default=None, choices=STAGES,
                        help="discard this stage's outputs and every later stage's, and run them again")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="run folder")
    parser.set_defaults(func=run)


FIELDS = ["model", "teacher", "teacher_model", "teacher_sees", "encoder", "task", "data", "test_fraction",
          "split_seed", "prompting", "method", "preset", "candidates", "pairing", "draws_per_vignette",
          "bootstrap_replicates"]


def run(args: argparse.Namespace) -> int:
    from medfair.pipeline import PipelineConfig, parse_eval_tasks, pipeline, print_comparison

    overrides = {name: getattr(args, name) for name in FIELDS}
    if args.config is not None:
        config = PipelineConfig.from_file(args.config, **overrides)
    else:
        config = PipelineConfig(**{k: v for k, v in overrides.items() if v is not None})
    if args.eval_tasks:
        config.eval_tasks = parse_eval_tasks(args.eval_tasks, config.data)
    result = pipeline(config, out=args.out, from_stage=args.from_stage)
    print()
    print_comparison(result.comparison)
    print(f"\nreport: {result.report_path}")
    return 0
