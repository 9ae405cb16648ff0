"""``medfair audit``: score every counterfactual prompt of a task and report the gaps."""

from __future__ import annotations

import argparse
import pathlib


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="assess a model's counterfactual demographic gaps on a clinical task",
        description="Score every counterfactual prompt of a task with the model and write results.jsonl, "
        "summary.json and report.html to --out. Rerunning with the same --out resumes an interrupted run.",
    )
    parser.add_argument("--model", default=None,
                        help="a .gguf file or Hugging Face folder (default: SmolLM2-135M-Instruct); with --endpoint, "
                        "the served model's name")
    parser.add_argument("--adapter", default=None, help="a LoRA adapter folder (from medfair align) to apply to --model")
    parser.add_argument("--task", default="qpain", help="qpain, nurse, healer or generic (default: qpain)")
    parser.add_argument("--data", required=True, help="folder or file with the task's vignettes")
    parser.add_argument("--prompting", default="zero-shot", choices=["zero-shot", "few-shot", "cot"],
                        help="prompt format (default: zero-shot)")
    parser.add_argument("--axes", default="", help="comma-separated axes to vary (default: the task's, race,gender)")
    parser.add_argument("--vignettes", default="", help="comma-separated vignette ids to audit (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of names and few-shot examples (default: 0)")
    parser.add_argument("--shots", type=int, default=2, help="solved examples in few-shot prompts (default: 2)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per forward pass (default: 16)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates per interval (default: 2000)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="model precision")
    remote = parser.add_argument_group("served models")
    remote.add_argument("--endpoint", default=None,
                        help="API root of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM)")
    remote.add_argument("--scoring", default="logprobs", choices=["logprobs", "sampled"],
                        help="logprobs: echoed prompt log-probabilities from /completions (default); sampled: count "
                        "the options named by answers sampled from /chat/completions")
    remote.add_argument("--samples", type=int, default=10, help="answers per prompt with --scoring sampled (default: 10)")
    remote.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    remote.add_argument("--max-tokens", type=int, default=32, help="tokens per sampled answer (default: 32)")
    remote.add_argument("--chat-template", default="chatml",
                        help="template family of the served model for --scoring logprobs (default: chatml)")
    remote.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding the API key (default: OPENAI_API_KEY)")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="run folder for the results")
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medfair.audit import audit

    report = audit(
        model=args.model,
        task=args.task,
        data=args.data,
        out=args.out,
        prompting=args.prompting,
        axes=[a for a in args.axes.split(",") if a],
        vignettes=[v for v in args.vignettes.split(",") if v],
        seed=args.seed,
        shots=args.shots,
        batch_size=args.batch_size,
        bootstrap_replicates=args.bootstrap,
        dtype=args.dtype,
        adapter=args.adapter,
        endpoint=args.endpoint,
        scoring=args.scoring,
        samples=args.samples,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        chat_template=args.chat_template,
        api_key_env=args.api_key_env,
    )
    print_summary(report)
    if not args.no_report:
        try:
            from medfair.report import render_report
        except ImportError:
            render_report = None
        if render_report is not None:
            path = render_report(args.out)
            print(f"report: {path}")
    print(f"results: {args.out / 'results.jsonl'}")
    print(f"summary: {args.out / 'summary.json'}")
    return 0


def print_summary(report) -> None:
    """Print the headline numbers of each question as a short table."""
    print(f"{'question':<10} {'option':<8} {'max gap':>8} {'95% CI':>18}  {'groups (high / low)':<36} "
          f"{'flip rate':>9} {'accuracy':>8} {'Friedman p':>10}")
    for question in report.summary["questions"]:
        gap = report.max_gap(question)
        metrics = report.metrics(question)
        level = report._level(report._question(question), "intersectional")
        interval = f"[{_number(gap['ci_low'])}, {_number(gap['ci_high'])}]"
        groups = f"{gap['group_high']} / {gap['group_low']}"[:36]
        print(
            f"{question:<10} {gap['option']:<8} {_number(gap['value']):>8} {interval:>18}  {groups:<36} "
            f"{_number(metrics.get('flip_rate')):>9} {_number(level['overall'].get('accuracy')):>8} "
            f"{_number(metrics.get('friedman/p_value')):>10}"
        )


def _number(value) -> str:
    if value is None:
        return "n/a"
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "n/a"
