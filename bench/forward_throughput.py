"""Forward-pass throughput: medfair.CausalLM against transformers.

Scores the Q-Pain prompts (each vignette and its question as one chat turn)
with both implementations on the same SmolLM2 weights and thread count, in one
process, and prints prompts per second for each and their ratio. Each prompt
is one forward pass over the whole chat-formatted prompt, batch size 1, which
is what an audit without prefix reuse costs.

    python bench/forward_throughput.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import csv
import os
import pathlib
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def qpain_prompts(data_dir: pathlib.Path) -> list[str]:
    prompts = []
    for path in sorted((data_dir / "qpain").glob("*.csv")):
        with open(path, newline="", encoding="utf-8-sig") as stream:
            for row in csv.DictReader(stream):
                prompts.append(f"{row['Vignette']}\n{row['Question']}")
    return prompts


def time_per_prompt(runs, batches, repeats: int) -> list[float]:
    """Return the best seconds per prompt of each run function.

    The functions alternate prompt by prompt, so a change in machine load
    during the measurement affects every side alike.
    """
    for run in runs:
        run(batches[0])  # warm-up: first-call allocations and kernel selection
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        totals = [0.0] * len(runs)
        for ids in batches:
            for i, run in enumerate(runs):
                start = time.perf_counter()
                run(ids)
                totals[i] += time.perf_counter() - start
        best = [min(b, t) for b, t in zip(best, totals)]
    return [b / len(batches) for b in best]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for both sides")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over all prompts; the best is kept")
    parser.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import medfair
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = pathlib.Path(medfair._defaults.default_model_path())
    ours = medfair.CausalLM.load(str(gguf))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()

    prompts = qpain_prompts(args.data)
    batches = [
        torch.tensor([ours.encode_prompt(ours.apply_chat_template([{"role": "user", "content": p}], True))])
        for p in prompts
    ]
    tokens = sum(b.shape[1] for b in batches)

    def run_medfair(ids):
        return ours.logits(ids)

    def run_transformers(ids):
        with torch.inference_mode():
            return reference(ids).logits

    medfair_seconds, reference_seconds = time_per_prompt([run_medfair, run_transformers], batches, args.repeats)
    print(f"prompts: {len(batches)} Q-Pain vignettes, {tokens / len(batches):.0f} tokens on average; threads: {args.threads}")
    print(f"medfair       {1 / medfair_seconds:8.2f} prompts/s")
    print(f"transformers  {1 / reference_seconds:8.2f} prompts/s")
    print(f"ratio (medfair / transformers): {reference_seconds / medfair_seconds:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
