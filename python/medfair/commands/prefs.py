"""``medfair prefs``: build preference pairs from teacher references and ranked target candidates."""

from __future__ import annotations

import argparse
import pathlib


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prefs",
        help="build a preference dataset (prompt, chosen, rejected) for alignment",
        description="Render each training vignette with random protected attributes, let the teacher write a "
        "reference answer and the target several candidates, rank the candidates by MiniLM similarity to the "
        "reference, and write the pairs to --out as JSON Lines. Rerunning with the same --out resumes; "
        "generations are cached in OUT.cache.sqlite.",
    )
    parser.add_argument("--target", default="DEFAULT",
                        help="the model to align: a .gguf file or Hugging Face folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--teacher", default="self",
                        help="self, a .gguf file or Hugging Face folder, an http(s):// base URL of an OpenAI-compatible "
                        "server, or a .jsonl file of references (default: self)")
    parser.add_argument("--teacher-model", default=None, help="model name to request from an endpoint teacher")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="environment variable with the endpoint's API key (default: OPENAI_API_KEY)")

    parser.add_argument("--encoder", default="DEFAULT",
                        help="sentence-transformers folder for ranking (default: all-MiniLM-L6-v2)")

    parser.add_argument("--task", default="qpain", help="qpain, nurse, healer or generic (default: qpain)")
    parser.add_argument("--data", required=True, help="folder or file with the task's vignettes")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="output JSON Lines file")
    parser.add_argument("--split", default="train", choices=["train", "test", "all"],
                        help="side of the vignette split to use (default: train)")
    parser.add_argument("--test-fraction", type=float, default=0.5, help="share of vignettes held out (default: 0.5)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the vignette split (default: 0)")
    parser.add_argument("--vignettes", default="", help="comma-separated vignette ids; overrides --split")

    parser.add_argument("--candidates", type=int, default=2, help="target candidates per prompt, >= 2 (default: 2)")
    parser.add_argument("--pairing", default="ranked", choices=["ranked", "reference"],
                        help="ranked: most vs least similar candidate; reference: teacher vs least similar "
                        "(default: ranked)")
    parser.add_argument("--teacher-sees", default="neutral", choices=["neutral", "modified"],
                        help="the teacher answers the attribute-free vignette or the target's prompt (default: neutral)")
    parser.add_argument("--format", default="plain", choices=["plain", "conversational"],
                        help="prompt/chosen/rejected as strings or chat message lists (default: plain)")
    parser.add_argument("--min-margin", type=float, default=0.0,
                        help="min similarity margin, chosen minus rejected, to keep a pair (default: 0)")
    parser.add_argument("--keep-identical", action="store_true", help="keep pairs whose chosen and rejected are equal")
    parser.add_argument("--drop-off-format", action="store_true",
                        help="leave out candidates that neither start with one of the first question's options "
                        "nor write one after the answer prefix (\"Answer: Yes\")")

    parser.add_argument("--draws", type=int, default=1, help="prompts per vignette, each with new attributes (default: 1)")
    parser.add_argument("--prompting", default="zero-shot", choices=["zero-shot", "few-shot", "cot"],
                        help="prompt format (default: zero-shot)")
    parser.add_argument("--axes", default="", help="comma-separated axes to draw (default: the task's, race,gender)")

    parser.add_argument("--max-new-tokens", type=int, default=128, help="max tokens per answer (default: 128)")
    parser.add_argument("--temperature", type=float, default=0.7,
                        help="sampling temperature of the candidates (default: 0.7)")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass of the candidates (default: 0.9)")
    parser.add_argument("--top-k", type=int, default=0, help="top-k filter of the candidates; 0 is off (default: 0)")
    parser.add_argument("--repetition-penalty", type=float, default=1.0,
                        help="repetition penalty of the candidates; 1 is off (default: 1)")
    parser.add_argument("--teacher-temperature", type=float, default=0.0,
                        help="sampling temperature of the teacher; 0 is greedy (default: 0)")

    parser.add_argument("--seed", type=int, default=0, help="seed of attribute draws and sampling (default: 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows decoded together (default: 16)")
    parser.add_argument("--prompts-per-step", type=int, default=8,
                        help="prompts generated and appended together; smaller steps lose less on interruption "
                        "(default: 8)")
    parser.add_argument("--no-cache", action="store_true", help="do not cache generations in OUT.cache.sqlite")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="model precision")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medfair.prefs import build_preferences

    result = build_preferences(
        target=None if args.target == "DEFAULT" else args.target,
        teacher=args.teacher,
        encoder=None if args.encoder == "DEFAULT" else args.encoder,
        task=args.task,
        data=args.data,
        out=args.out,
        split=args.split,
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
        vignettes=[v for v in args.vignettes.split(",") if v],
        candidates=args.candidates,
        pairing=args.pairing,
        teacher_sees=args.teacher_sees,
        format=args.format,
        min_margin=args.min_margin,
        drop_identical=not args.keep_identical,
        drop_off_format=args.drop_off_format,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        repetition_penalty=args.repetition_penalty,
        teacher_temperature=args.teacher_temperature,
        teacher_model=args.teacher_model,
        api_key_env=args.api_key_env,
        draws_per_vignette=args.draws,
        prompting=args.prompting,
        axes=[a for a in args.axes.split(",") if a],
        seed=args.seed,
        cache=not args.no_cache,
        batch_size=args.batch_size,
        prompts_per_step=args.prompts_per_step,
        dtype=args.dtype,
    )
    margin = result.mean_margin
    print(f"prompts: {result.prompts}  records: {result.written}  resumed: {result.resumed}  "
          f"dropped: {', '.join(f'{k} {v}' for k, v in result.dropped.items())}")
    print(f"mean similarity margin: {'n/a' if margin is None else f'{margin:.4f}'}  time: {result.seconds:.1f} s")
    print(f"preferences: {result.path}")
    if result.cache_path is not None:
        print(f"cache: {result.cache_path}")
    return 0
