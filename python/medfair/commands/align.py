"""``medfair align``: train LoRA adapters on a preference file with SimPO or DPO."""

from __future__ import annotations

import argparse
import pathlib


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "align",
        help="train LoRA adapters on preference pairs (SimPO or DPO)",
        description="Train LoRA adapters of a model on a preference JSONL file and write them to --out as a PEFT "
        "folder, with train_log.jsonl and align_settings.json. Options left unset take the preset's value. "
        "Under torchrun (e.g. torchrun --nproc-per-node 2 -m medfair align ...) the processes train "
        "data-parallel, each on its share of every step's pairs, and rank 0 writes the files.",
    )
    parser.add_argument("--model", default=None, help="a .gguf file or Hugging Face folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--prefs", required=True, type=pathlib.Path, help="preference JSONL file (prompt, chosen, rejected)")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="output folder for the adapter and logs")
    parser.add_argument("--method", default="simpo", choices=["simpo", "dpo"], help="loss (default: simpo)")
    parser.add_argument("--preset", default=None, choices=["simpo", "notebook"],
                        help="settings to start from (default: simpo)")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the data (preset: 1)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate of AdamW")
    parser.add_argument("--beta", type=float, default=None, help="loss inverse temperature beta")
    parser.add_argument("--gamma-beta-ratio", type=float, default=None, help="SimPO target margin gamma / beta")
    parser.add_argument("--label-smoothing", type=float, default=None, help="label smoothing in [0, 0.5]")
    parser.add_argument("--sft-weight", type=float, default=None, help="weight of the NLL term on chosen responses")
    parser.add_argument("--lora-r", type=int, default=None, help="LoRA rank")
    parser.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (scaling alpha / r)")
    parser.add_argument("--lora-dropout", type=float, default=None, help="LoRA dropout probability")
    parser.add_argument("--target-modules", default=None,
                        help="comma-separated projections (q_proj,...,down_proj) or 'all'")
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per forward pass")
    parser.add_argument("--grad-accum", type=int, default=None, help="forward passes per optimiser step")
    parser.add_argument("--max-length", type=int, default=None, help="maximum tokens of prompt + response")
    parser.add_argument("--max-prompt-length", type=int, default=None,
                        help="prompt tokens kept (the last ones) when a pair is longer than --max-length")
    parser.add_argument("--warmup-ratio", type=float, default=None, help="fraction of steps for linear warmup")
    parser.add_argument("--scheduler", default=None, choices=["cosine", "linear"], help="decay after warmup")
    parser.add_argument("--seed", type=int, default=None, help="seed of data order, initialisation and dropout")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="write a checkpoint every N steps")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute layer activations in the backward pass to lower peak memory")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="base weight precision")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medfair.align import align

    result = align(
        model=args.model,
        prefs=args.prefs,
        out=args.out,
        method=args.method,
        preset=args.preset,
        resume=args.resume,
        dtype=args.dtype,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.target_modules,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        beta=args.beta,
        gamma_beta_ratio=args.gamma_beta_ratio,
        label_smoothing=args.label_smoothing,
        sft_weight=args.sft_weight,
        batch_size=args.batch_size,
        grad_accumulation=args.grad_accum,
        max_length=args.max_length,
        max_prompt_length=args.max_prompt_length,
        warmup_ratio=args.warmup_ratio,
        scheduler=args.scheduler,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        gradient_checkpointing=args.gradient_checkpointing or None,
    )
    if result.rank != 0:
        return 0
    log = result.log
    if len(log):
        first, last = log.iloc[0], log.iloc[-1]
        print(f"steps: {result.steps} (resumed from {result.resumed_from_step})")
        print(f"loss: {first['loss']:.4f} -> {last['loss']:.4f}; "
              f"reward accuracy: {first['reward_accuracy']:.2f} -> {last['reward_accuracy']:.2f}")
    truncation = result.truncation
    print(f"pairs: {truncation['pairs']}, responses truncated: {truncation['responses_truncated']}, "
          f"skipped (empty after truncation): {truncation['empty_responses']}")
    print(f"adapter: {result.adapter_dir}")
    print(f"log: {result.log_path}")
    return 0
