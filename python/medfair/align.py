"""Preference alignment from Python: ``medfair.align(...)``.

Training runs in C++ (``SimPOTrainer``). This module builds the options from a
preset and keyword overrides and shows progress. It also writes the run's
settings next to the adapter and returns the step log as a pandas DataFrame.
Under torchrun (WORLD_SIZE > 1 in the environment) it trains data-parallel
across the processes through torch.distributed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
from typing import Any, Callable, Sequence

from . import _core
from ._defaults import default_model_path


@dataclasses.dataclass
class AlignResult:
    """A finished training run: the adapter folder, its log and what truncation did."""

    adapter_dir: pathlib.Path
    log_path: pathlib.Path
    steps: int
    resumed_from_step: int
    truncation: dict[str, int]
    settings: dict[str, Any]
    rank: int = 0
    world_size: int = 1

    @property
    def log(self):
        """One row per optimiser step (train_log.jsonl) as a DataFrame."""
        import pandas as pd

        rows = [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return pd.DataFrame(rows)


# Keyword arguments of align() and the TrainerOptions field each one sets.
_OPTION_FIELDS = {
    "beta": "beta",
    "gamma_beta_ratio": "gamma_beta_ratio",
    "label_smoothing": "label_smoothing",
    "sft_weight": "sft_weight",
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "warmup_steps": "warmup_steps",
    "warmup_ratio": "warmup_ratio",
    "scheduler": "scheduler",
    "epochs": "epochs",
    "max_steps": "max_steps",
    "batch_size": "batch_size",
    "grad_accumulation": "grad_accumulation",
    "max_grad_norm": "max_grad_norm",
    "seed": "seed",
    "max_length": "max_length",
    "max_prompt_length": "max_prompt_length",
    "checkpoint_every": "checkpoint_every",
    "gradient_checkpointing": "gradient_checkpointing",
}

# DPO's beta when neither a preset nor the caller sets one: TRL's DPOConfig default.
_DPO_DEFAULT_BETA = 0.1


def trainer_options(
    method: str = "simpo",
    preset: str | None = None,
    lora_r: int | None = None,
    lora_alpha: float | None = None,
    lora_dropout: float | None = None,
    target_modules: Sequence[str] | str | None = None,
    **overrides: Any,
) -> _core.TrainerOptions:
    """Build TrainerOptions from a preset ("simpo" by default, or "notebook") and overrides.

    ``target_modules`` is a list of projection names or "all" for all seven.
    Overrides set to None keep the preset's value. Raises ConfigError for
    unknown keywords or invalid values.
    """
    options = _core.TrainerOptions.preset(preset or "simpo")
    options.method = method
    if method == "dpo" and preset is None and overrides.get("beta") is None:
        options.beta = _DPO_DEFAULT_BETA
    for key, value in overrides.items():
        if key not in _OPTION_FIELDS:
            raise _core.ConfigError(f"align: unknown option {key!r}; options: {', '.join(sorted(_OPTION_FIELDS))}")
        if value is not None:
            setattr(options, _OPTION_FIELDS[key], value)
    lora = options.lora
    if lora_r is not None:
        lora.r = lora_r
    if lora_alpha is not None:
        lora.alpha = lora_alpha
    if lora_dropout is not None:
        lora.dropout = lora_dropout
    if target_modules is not None:
        if isinstance(target_modules, str):
            target_modules = (
                list(_ALL_TARGETS) if target_modules == "all" else [m for m in target_modules.split(",") if m]
            )
        lora.target_modules = list(target_modules)
    options.lora = lora
    options.validate()
    return options


_ALL_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _options_dict(options: _core.TrainerOptions) -> dict[str, Any]:
    settings = {field: getattr(options, field) for field in sorted(set(_OPTION_FIELDS.values()))}
    settings["method"] = options.method
    lora = options.lora
    settings["lora"] = {
        "r": lora.r,
        "alpha": lora.alpha,
        "dropout": lora.dropout,
        "use_rslora": lora.use_rslora,
        "target_modules": list(lora.target_modules),
    }
    return settings


def align(
    model: str | os.PathLike | _core.CausalLM | None = None,
    prefs: str | os.PathLike = "prefs.jsonl",
    out: str | os.PathLike = "adapters/run1",
    method: str = "simpo",
    preset: str | None = None,
    *,
    resume: bool = False,
    dtype: str = "float32",
    lora_r: int | None = None,
    lora_alpha: float | None = None,
    lora_dropout: float | None = None,
    target_modules: Sequence[str] | str | None = None,
    progress: bool | Callable[[dict, int], None] = True,
    **options: Any,
) -> AlignResult:
    """Train LoRA adapters on a preference file with SimPO or DPO.

    ``model`` is a .gguf file, a Hugging Face folder, a loaded CausalLM, or
    None for the default SmolLM2-135M-Instruct. ``prefs`` is a JSONL file of
    {prompt, chosen, rejected} records (strings, or message lists rendered with
    the model's chat template). The adapter is written to ``out`` as a PEFT
    folder, so ``CausalLM.load(model, adapter=out)`` scores the aligned model;
    ``out`` also receives train_log.jsonl, align_settings.json and, with
    ``checkpoint_every``, a checkpoint that ``resume=True`` continues from.
    Further keyword arguments override the preset's fields (beta,
    gamma_beta_ratio, label_smoothing, sft_weight, learning_rate, epochs,
    max_steps, batch_size, grad_accumulation, max_grad_norm, warmup_ratio,
    warmup_steps, scheduler, seed, max_length, max_prompt_length,
    checkpoint_every, weight_decay, gradient_checkpointing). ``progress`` shows a bar, or is called as
    progress(step_record, total_steps) after every optimiser step.

    Under torchrun with WORLD_SIZE > 1, or inside a torch.distributed process
    group, every process trains on its share of each step's
    world_size x batch_size x grad_accumulation pairs and the gradients are
    summed across processes. Only rank 0 writes files and shows the bar, while a
    callable ``progress`` is called on every rank.
    """
    trainer_settings = trainer_options(
        method=method,
        preset=preset,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        **options,
    )
    if isinstance(model, _core.CausalLM):
        loaded = model
    else:
        path = pathlib.Path(model) if model is not None else pathlib.Path(default_model_path())
        loaded = _core.CausalLM.load(str(path), dtype=dtype)
    out_dir = pathlib.Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    pairs = _core.read_preference_file(str(prefs), loaded)
    trainer = _core.SimPOTrainer(loaded, trainer_settings)
    with _DataParallel(trainer, loaded) as parallel:
        callback, bar = _progress_callback(progress if parallel.rank == 0 or callable(progress) else False)
        try:
            result = trainer.train(pairs, str(out_dir), resume=resume, progress=callback)
        finally:
            if bar is not None:
                bar.close()
        outcome = _align_result(result, loaded, prefs, preset, trainer_settings, out_dir, parallel)
        # The other ranks return once rank 0 has written the adapter and settings.
        parallel.barrier()
    return outcome


def _align_result(result, loaded, prefs, preset, trainer_settings, out_dir, parallel) -> AlignResult:
    truncation = {
        "pairs": result.truncation.pairs,
        "prompts_truncated": result.truncation.prompts_truncated,
        "responses_truncated": result.truncation.responses_truncated,
        "empty_responses": result.truncation.empty_responses,
    }
    from . import __version__

    settings = {
        "model": str(loaded.source),
        "prefs": str(prefs),
        "prefs_sha256": _core.sha256_file(str(prefs)),
        "preset": preset or "simpo",
        "options": _options_dict(trainer_settings),
        "truncation": truncation,
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "world_size": parallel.world_size,
        "medfair_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if parallel.rank == 0:
        (out_dir / "align_settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return AlignResult(
        adapter_dir=out_dir,
        log_path=pathlib.Path(result.log_path),
        steps=result.steps,
        resumed_from_step=result.resumed_from_step,
        truncation=truncation,
        settings=settings,
        rank=parallel.rank,
        world_size=parallel.world_size,
    )


class _DataParallel:
    """Joins the trainer to torch.distributed when training runs data-parallel.

    A process group that the caller set up is used as it is. Otherwise, when
    torchrun's WORLD_SIZE is above 1, one is created from torchrun's
    environment (RANK, MASTER_ADDR, MASTER_PORT) with the gloo backend for CPU
    adapters or nccl for CUDA ones, and destroyed on exit.
    """

    def __init__(self, trainer: _core.SimPOTrainer, model: _core.CausalLM) -> None:
        self.trainer = trainer
        self.model = model
        self.rank = 0
        self.world_size = 1
        self._created_group = False

    def __enter__(self) -> "_DataParallel":
        import torch.distributed as dist

        if not dist.is_available():
            return self
        if not dist.is_initialized():
            if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
                return self
            # NOTE: CausalLM runs on the CPU only, so the nccl branch has not
            # been run; a CUDA model would also need torch.cuda.set_device(LOCAL_RANK).
            on_cuda = any(t.is_cuda for t in self.model.adapter_state_dict().values())
            dist.init_process_group(backend="nccl" if on_cuda else "gloo")
            self._created_group = True
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        if self.world_size > 1:
            # The trainer runs the group's all-reduce from C++, without the GIL.
            self.trainer.set_process_group(dist.group.WORLD)
        return self

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def __exit__(self, *exc_info) -> None:
        if self._created_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _progress_callback(progress):
    if callable(progress):
        return progress, None
    if not progress:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="step", desc="align", dynamic_ncols=True)

    def update(step: dict, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = step["step"]
        bar.set_postfix(
            loss=f"{step['loss']:.4f}",
            margin=f"{step['reward_margin']:.3f}",
            acc=f"{step['reward_accuracy']:.2f}",
            lr=f"{step['learning_rate']:.2e}",
            tok_s=f"{step['tokens_per_second']:.0f}",
            refresh=False,
        )
        bar.refresh()

    return update, bar
