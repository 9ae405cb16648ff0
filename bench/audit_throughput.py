"""Audit throughput: medfair's FairnessEvaluator against two transformers audits.

Scores the same Q-Pain counterfactual prompts (both questions: the decision,
then the dose after "Yes") on the same SmolLM2 weights and thread count, in
one process, three ways:

- medfair: FairnessEvaluator.score, with shared-prefix reuse, batching, and
  the dose question continuing from the decision's caches;
- transformers, one forward per prompt: each stage prompt run alone at batch
  size 1, its options read from the next-token distribution (every option
  form of this task is one token, so this scores them exactly);
- transformers, generate-then-parse: greedy generation of up to
  --new-tokens tokens per stage prompt, then the option is parsed from the
  text, as published audit code does with hosted models.

All three get medfair's token ids, so they process identical inputs. Prints
prompts per second for each and medfair's speed-up over the other two.

    python bench/audit_throughput.py [--vignettes N] [--threads T] [--new-tokens K] [--prompting few-shot]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def stage_texts(model, record: dict) -> list[tuple[str, list[list[str]]]]:
    """(prompt text, option surface forms) of each stage of a prompt record."""
    out = []
    for stage in record["stages"]:
        text = model.apply_chat_template(stage["messages"], True) + stage["answer_prefix"]
        out.append((text, [option["surface_forms"] for option in stage["options"]]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for every side")
    parser.add_argument("--vignettes", type=int, default=4, help="Q-Pain vignettes to audit (8 prompts each)")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per prompt by generate-then-parse")
    parser.add_argument("--prompting", default="zero-shot", choices=["zero-shot", "few-shot"],
                        help="prompt format; few-shot prompts share their example block")
    parser.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import medfair
    from medfair import _core
    from transformers import AutoModelForCausalLM

    gguf = pathlib.Path(medfair._defaults.default_model_path())
    ours = medfair.CausalLM.load(str(gguf))
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()

    task = medfair.load_task("qpain", str(args.data / "qpain"))
    ids = [v.id for v in task.vignettes[: args.vignettes]]
    modifier = _core.PromptModifier(format=args.prompting.replace("-", "_"))
    records = [r for r in modifier.counterfactuals(task) if r.vignette_id in ids]
    evaluator = _core.FairnessEvaluator(ours, modifier, vignettes=ids)
    tokenizer = ours.tokenizer
    eos = tokenizer.eos_id

    stages = [s for r in records for s in stage_texts(ours, r.to_dict())]
    inputs = [torch.tensor([ours.encode_prompt(text)]) for text, _ in stages]
    first_tokens = [
        [[tokenizer.encode(form, False, False)[0] for form in forms] for forms in options] for _, options in stages
    ]

    def run_medfair():
        evaluator._score(records)

    def run_forward():
        with torch.inference_mode():
            for ids_, options in zip(inputs, first_tokens):
                log_probs = torch.log_softmax(reference(ids_).logits[0, -1].double(), -1)
                [torch.logsumexp(log_probs[forms], 0) for forms in options]

    def run_generate():
        with torch.inference_mode():
            for ids_ in inputs:
                out = reference.generate(ids_, attention_mask=torch.ones_like(ids_), max_new_tokens=args.new_tokens,
                                         do_sample=False, pad_token_id=eos)
                answer = tokenizer.decode(out[0, ids_.shape[1]:].tolist(), True)
                _core.parse_option(answer, ["Yes", "No"], "Answer:")

    # Warm-up on a few prompts, then alternate the three sides twice and keep
    # each side's best pass, so load changes hit all of them alike.
    evaluator._score(records[:2])
    with torch.inference_mode():
        reference(inputs[0])
    best = {"medfair": float("inf"), "forward": float("inf"), "generate": float("inf")}
    for _ in range(2):
        for name, run in (("medfair", run_medfair), ("forward", run_forward), ("generate", run_generate)):
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)

    n = len(records)
    tokens = sum(i.shape[1] for i in inputs) / len(inputs)
    print(f"prompts: {n} {args.prompting} ({args.vignettes} Q-Pain vignettes x 8 groups, 2 questions each, "
          f"{tokens:.0f} tokens per stage prompt on average); threads: {args.threads}; generate-then-parse: "
          f"{args.new_tokens} new tokens")
    for name, label in (("medfair", "medfair audit"), ("forward", "transformers, forward per prompt"),
                        ("generate", "transformers, generate-then-parse")):
        print(f"{label:<36} {n / best[name]:8.2f} prompts/s")
    print(f"medfair / forward per prompt:   {best['forward'] / best['medfair']:.2f}x (target 3x)")
    print(f"medfair / generate-then-parse:  {best['generate'] / best['medfair']:.2f}x (target 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
