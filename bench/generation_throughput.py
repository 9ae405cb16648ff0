"""Generation throughput: medfair's batched sampling against transformers' generate.

Samples continuations of medfair's own vignettes (each rendered without
protected attributes, as one chat conversation) with both implementations in
one process. Both use the same SmolLM2 weights, prompts, batch and thread
count. The script prints generated tokens per second for each and their ratio. Both sides sample
with temperature 0.7 and top-p 0.9 and generate exactly --max-new-tokens
tokens per prompt (medfair with stop_at_eos off, transformers with
min_new_tokens), so they do the same amount of work.

    python bench/generation_throughput.py [--threads N] [--max-new-tokens T] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def vignette_conversations() -> list[list[dict[str, str]]]:
    import medfair
    from medfair.audit import PROJECT_DATA

    conversations = []
    for path in sorted((PROJECT_DATA / "vignettes").glob("*.jsonl")):
        task = medfair.load_generic(str(path))
        for record in medfair.PromptModifier().neutral(task):
            conversations.append(record.conversation)
    return conversations


def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    return ids, mask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for both sides")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens generated per prompt (default: 64)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per side, alternating; the best is kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import medfair
    from transformers import AutoModelForCausalLM

    gguf = pathlib.Path(medfair._defaults.default_model_path())
    ours = medfair.CausalLM.load(str(gguf))
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()

    conversations = vignette_conversations()
    prompts = [ours.encode_prompt(ours.apply_chat_template(c, True)) for c in conversations]
    ids, mask = left_padded(prompts, pad_id=0)
    options = medfair.SamplingOptions(
        max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.9, stop_at_eos=False, batch_size=len(prompts)
    )

    def run_medfair() -> int:
        outputs = medfair.generate(ours, prompts, options)
        return sum(len(o.token_ids) for o in outputs)

    def run_transformers() -> int:
        torch.manual_seed(0)
        with torch.inference_mode():
            output = reference.generate(
                ids, attention_mask=mask, do_sample=True, temperature=0.7, top_p=0.9, top_k=0,
                max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens, pad_token_id=0,
            )
        return (output.shape[1] - ids.shape[1]) * output.shape[0]

    runs = {"medfair": run_medfair, "transformers": run_transformers}
    best = {name: 0.0 for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            tokens = run()
            elapsed = time.perf_counter() - start
            best[name] = max(best[name], tokens / elapsed)

    print(f"prompts: {len(prompts)} in one batch, {sum(map(len, prompts)) / len(prompts):.0f} tokens on average; "
          f"{args.max_new_tokens} new tokens each; threads: {args.threads}")
    for name, rate in best.items():
        print(f"{name:<13} {rate:8.1f} tokens/s")
    print(f"ratio (medfair / transformers): {best['medfair'] / best['transformers']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
