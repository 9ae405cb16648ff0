"""Training-step time and memory: medfair's SimPOTrainer against TRL + PEFT.

One optimisation step is a forward and backward pass over a batch of
preference pairs plus the AdamW update, with LoRA adapters on all seven
projections of SmolLM2-135M-Instruct. transformers refuses to train a model
it loaded from GGUF, so the GGUF file is first dequantized to float32 and
saved as a Hugging Face folder, which both sides load.
medfair trains through SimPOTrainer; the reference is TRL's
CPOTrainer(loss_type="simpo", cpo_alpha=0) on a PEFT model, driven step by
step with torch.optim.AdamW. Both sides use the same pairs (built from the
project's vignettes), LoRA settings and thread count.

Each side runs in its own child process, so that peak memory can be read
from the process's maximum resident set size: the number reported is the
peak during the steps minus the resident size before them. The sides
alternate for --rounds rounds and the best step time of each is kept.

With --gradient-checkpointing both sides recompute each decoder layer's
activations in the backward pass: medfair through
TrainerOptions.gradient_checkpointing, transformers through
gradient_checkpointing_enable (non-reentrant).

    python bench/train_step.py [--steps N] [--batch-size B] [--rounds R] [--threads T] [--gradient-checkpointing]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
VIGNETTES = ROOT / "python" / "medfair" / "data" / "vignettes"
LORA = {"r": 16, "alpha": 32.0, "dropout": 0.0}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def records(count: int) -> list[dict]:
    """Preference records from the shipped vignettes: the answer with its explanation against the other option."""
    rows = []
    for path in sorted(VIGNETTES.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for i in range(count):
        row = rows[i % len(rows)]
        text = row["template"].replace("{Name}", "Alex").replace("{name}", "Alex").replace("{race}", "Black")
        text = text.replace("{gender}", "man").replace("{Pronoun.subject}", "He").replace("{pronoun.subject}", "he")
        text = text.replace("{Pronoun.possessive}", "His").replace("{pronoun.possessive}", "his")
        question = row["question"].replace("{name}", "Alex")
        wrong = [o for o in row["options"] if o != row["answer"]][0]
        out.append({
            "prompt": [{"role": "user", "content": f"{text} {question}"}],
            "chosen": [{"role": "assistant", "content": f"{row['answer']}. {row['explanation']}"}],
            "rejected": [{"role": "assistant", "content": f"{wrong}. Nothing here needs a change in the plan."}],
        })
    return out


def rss_kib() -> int:
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_medfair(folder: str, steps: int, batch_size: int, checkpointing: bool) -> dict:
    import medfair

    model = medfair.CausalLM.load(folder)
    options = medfair.TrainerOptions()
    options.method = "simpo"
    options.beta = 2.0
    options.gamma_beta_ratio = 0.5
    options.lora = medfair.LoraOptions(r=LORA["r"], alpha=LORA["alpha"], dropout=LORA["dropout"],
                                       target_modules=TARGETS)
    options.batch_size = batch_size
    options.grad_accumulation = 1
    options.max_steps = steps + 1
    options.warmup_ratio = 0.0
    options.learning_rate = 1e-4
    options.gradient_checkpointing = checkpointing
    trainer = medfair.SimPOTrainer(model, options)
    pairs = [medfair.render_preference(r, model) for r in records(batch_size)]
    baseline = rss_kib()
    times = []
    last = [time.perf_counter()]

    def progress(step, total):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    with tempfile.TemporaryDirectory() as out:
        last[0] = time.perf_counter()
        trainer.train(pairs, out, progress=progress)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The first step includes one-time allocations; it is left out.
    return {"step_seconds": min(times[1:]), "peak_mib": (peak - baseline) / 1024}


def run_trl(folder: str, steps: int, batch_size: int, checkpointing: bool) -> dict:
    import datasets
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    base = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], target_modules=TARGETS,
                        task_type="CAUSAL_LM")
    policy = get_peft_model(base, config)
    with tempfile.TemporaryDirectory() as out:
        args = CPOConfig(output_dir=out, loss_type="simpo", cpo_alpha=0.0, beta=2.0, simpo_gamma=1.0, max_length=512,
                         report_to=[], remove_unused_columns=False, per_device_train_batch_size=batch_size,
                         bf16=False, use_cpu=True, gradient_checkpointing=False)
        trainer = CPOTrainer(model=policy, args=args, train_dataset=datasets.Dataset.from_list(records(batch_size)),
                             processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(batch_size)])
    parameters = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    policy.train()
    baseline = rss_kib()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss, _ = trainer.get_batch_loss_metrics(policy, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"step_seconds": min(times[1:]), "peak_mib": (peak - baseline) / 1024}


def save_hf_folder(gguf: str, folder: str) -> None:
    """Dequantize the GGUF file with transformers and save it as a float32 Hugging Face folder."""
    import torch
    import transformers

    path = pathlib.Path(gguf)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are already float32, so save_pretrained may write them
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # The saved weights are plain float32, so the GGUF marker must not follow them.
    config_path = pathlib.Path(folder) / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config_path.write_text(json.dumps(config, indent=2))


def child(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    run = run_medfair if args.child == "medfair" else run_trl
    print(json.dumps(run(args.folder, args.steps, args.batch_size, args.gradient_checkpointing)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side and round (after one warm-up step)")
    parser.add_argument("--batch-size", type=int, default=4, help="preference pairs per step")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each side is kept")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for both sides")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute layer activations in the backward pass on both sides")
    parser.add_argument("--gguf", default=None, help="model file (default: the installed SmolLM2 GGUF)")
    parser.add_argument("--child", choices=["medfair", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gguf is None:
        sys.path.insert(0, str(ROOT / "python"))
        from medfair._defaults import default_model_path

        args.gguf = str(default_model_path())
    if args.child:
        return child(args)

    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), TRL_EXPERIMENTAL_SILENCE="1")
    best = {"medfair": None, "trl": None}
    with tempfile.TemporaryDirectory() as folder:
        save_hf_folder(args.gguf, folder)
        for _ in range(args.rounds):
            for side in ("medfair", "trl"):
                command = [sys.executable, __file__, "--child", side, "--steps", str(args.steps), "--batch-size",
                           str(args.batch_size), "--threads", str(args.threads), "--folder", folder]
                if args.gradient_checkpointing:
                    command.append("--gradient-checkpointing")
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    print(done.stderr, file=sys.stderr)
                    raise SystemExit(f"the {side} run failed with exit status {done.returncode}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                if best[side] is None:
                    best[side] = result
                else:
                    best[side] = {key: min(best[side][key], result[key]) for key in result}
    medfair_result, trl_result = best["medfair"], best["trl"]
    print(f"batch: {args.batch_size} pairs, LoRA r {LORA['r']} on {len(TARGETS)} projections, "
          f"{args.threads} threads, {args.rounds} rounds x {args.steps} steps, "
          f"gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}")
    print(f"medfair   step {medfair_result['step_seconds']:.3f} s   peak +{medfair_result['peak_mib']:.0f} MiB")
    print(f"TRL+PEFT  step {trl_result['step_seconds']:.3f} s   peak +{trl_result['peak_mib']:.0f} MiB")
    print(f"ratio (medfair / TRL): step time {medfair_result['step_seconds'] / trl_result['step_seconds']:.2f}x, "
          f"peak memory {medfair_result['peak_mib'] / trl_result['peak_mib']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
