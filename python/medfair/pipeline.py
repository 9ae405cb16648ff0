"""The whole loop: audit, build preferences, align, audit again.

``medfair.pipeline(...)`` and ``medfair pipeline`` run these stages, each
reading the files of the stages before it from the run folder:

============== ==================================================================
split          vignettes into train and test, by vignette (split.json)
audit_before   audit of the target on the test vignettes (audit_before/)
audit_teacher  audit of a local teacher model on the same vignettes (audit_teacher/)
prefs          preference pairs from the train vignettes (prefs.jsonl)
align          LoRA training on the pairs (adapter/)
audit_after    audit of the aligned target on the test vignettes (audit_after/)
transfer       before/after audits on the other --eval-tasks (transfer/TASK/...)
report         comparison report and headline numbers (report.html, comparison.json)
============== ==================================================================

A stage records its completion in stages.json. Calling the pipeline again on
the same folder skips finished stages and resumes an interrupted one (audits,
preference building and training all resume from their own files);
``from_stage`` discards a stage's outputs and those of every later stage and
runs them again. The resolved configuration, with file hashes and versions,
is kept in config.json; a second call with other settings stops with a
ConfigError rather than mixing runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import shutil
from typing import Any, Callable

from . import _core
from ._defaults import default_encoder_path, default_model_path
from .audit import _write_json_atomic, audit, load_task

STAGES = ["split", "audit_before", "audit_teacher", "prefs", "align", "audit_after", "transfer", "report"]

# Optimiser steps between training checkpoints of the align stage.
CHECKPOINT_EVERY = 10

# Data folder names of the shipped tasks, relative to a shared data root.
TASK_FOLDERS = {"qpain": "qpain", "nurse": "nurse_bias", "healer": "healer"}


@dataclasses.dataclass
class PipelineConfig:
    """Every option of a pipeline run. Paths may be relative to the working folder."""

    model: str | None = None  # target: .gguf file or HF folder; None = SmolLM2-135M-Instruct
    teacher: str = "self"  # "self", a model path, an http(s) endpoint or a .jsonl of references
    teacher_model: str | None = None  # served model name, for an endpoint teacher
    encoder: str | None = None  # sentence encoder folder; None = all-MiniLM-L6-v2
    task: str = "qpain"
    data: str | None = None
    test_fraction: float = 0.5
    split_seed: int = 0
    prompting: str = "zero-shot"
    seed: int = 0
    bootstrap_replicates: int = 1000
    method: str = "simpo"
    preset: str | None = None
    teacher_sees: str = "neutral"
    candidates: int = 2
    pairing: str = "reference"  # chosen = the teacher's answer; see docs/RESULTS.md for why not "ranked"
    draws_per_vignette: int = 1
    max_new_tokens: int = 96
    prefs_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # more build_preferences keywords
    align_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # more align keywords
    eval_tasks: dict[str, str] = dataclasses.field(default_factory=dict)  # other task -> its data

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> "PipelineConfig":
        """Read a TOML (.toml) or JSON (.json) file of PipelineConfig fields; `overrides` win."""
        path = pathlib.Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise _core.IOError(f"cannot read the pipeline config {path}: {error.strerror}") from None
        try:
            if path.suffix == ".toml":
                import tomllib

                values = tomllib.loads(text)
            else:
                values = json.loads(text)
        except ValueError as error:
            raise _core.FormatError(f"{path}: not a valid {path.suffix.lstrip('.') or 'JSON'} file ({error})") from None
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise _core.ConfigError(f"{path}: unknown pipeline options {', '.join(unknown)}; "
                                    f"known options: {', '.join(sorted(fields))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def resolved(self) -> "PipelineConfig":
        """Fill in the default model, encoder and data paths and check the values."""
        config = dataclasses.replace(self)
        config.model = str(pathlib.Path(config.model).resolve()) if config.model else default_model_path()
        config.encoder = str(pathlib.Path(config.encoder).resolve()) if config.encoder else default_encoder_path()
        if config.data is None:
            raise _core.ConfigError(f"the pipeline needs data: the folder or file with the {config.task} vignettes")
        config.data = str(pathlib.Path(config.data).resolve())
        if not 0 < config.test_fraction < 1:
            raise _core.ConfigError(f"test_fraction must be between 0 and 1, got {config.test_fraction}")
        if config.method not in ("simpo", "dpo"):
            raise _core.ConfigError(f"method must be 'simpo' or 'dpo', got {config.method!r}")
        if config.teacher not in ("self",) and not config.teacher.startswith(("http://", "https://")):
            config.teacher = str(pathlib.Path(config.teacher).resolve())
        config.eval_tasks = {name: str(pathlib.Path(path).resolve()) for name, path in config.eval_tasks.items()}
        return config


@dataclasses.dataclass
class PipelineResult:
    """A finished pipeline run: its folder and headline numbers."""

    out_dir: pathlib.Path
    comparison: dict[str, Any]

    @property
    def report_path(self) -> pathlib.Path:
        return self.out_dir / "report.html"


def parse_eval_tasks(spec: str, data: str | None) -> dict[str, str]:
    """Parse "nurse,healer" or "nurse=PATH,healer=PATH". A bare name is looked up
    beside `data` under its usual folder name (nurse -> nurse_bias)."""
    tasks: dict[str, str] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, path = item.partition("=")
        if not path:
            if name not in TASK_FOLDERS or data is None:
                raise _core.ConfigError(f"--eval-tasks: give a data path for {name!r} as {name}=PATH")
            path = str(pathlib.Path(data).resolve().parent / TASK_FOLDERS[name])
        tasks[name] = path
    return tasks


def _file_hashes(path: str) -> list[dict[str, str]]:
    p = pathlib.Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".csv", ".jsonl", ".json"))
    return [{"path": str(f), "sha256": _core.sha256_file(str(f))} for f in files]


def _provenance(config: PipelineConfig) -> dict[str, Any]:
    import torch

    from . import __version__

    values = dataclasses.asdict(config)
    hashes = {
        "model_sha256": _core.sha256_file(config.model),
        "encoder_sha256": _core.sha256_file(config.encoder),
        "data_files": _file_hashes(config.data),
    }
    if pathlib.Path(config.teacher).exists():
        hashes["teacher_sha256"] = _core.sha256_file(config.teacher)
    return {"config": values, "files": hashes, "versions": {"medfair": __version__, "torch": torch.__version__}}


class _Run:
    """The run folder: config.json, stages.json and the stage outputs."""

    def __init__(self, out_dir: pathlib.Path):
        self.dir = out_dir
        self.stages_path = out_dir / "stages.json"

    def finished(self) -> dict[str, Any]:
        if not self.stages_path.exists():
            return {}
        return json.loads(self.stages_path.read_text())

    def mark(self, stage: str, **info: Any) -> None:
        stages = self.finished()
        stages[stage] = {"finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **info}
        _write_json_atomic(self.stages_path, stages)

    def discard_from(self, stage: str) -> None:
        """Forget `stage` and every later one, deleting their outputs."""
        later = STAGES[STAGES.index(stage):]
        stages = {k: v for k, v in self.finished().items() if k not in later}
        outputs = {
            "split": ["split.json"],
            "audit_before": ["audit_before"],
            "audit_teacher": ["audit_teacher"],
            "prefs": ["prefs.jsonl", "prefs"],
            "align": ["adapter"],
            "audit_after": ["audit_after"],
            "transfer": ["transfer"],
            "report": ["report.html", "comparison.json"],
        }
        for name in later:
            for relative in outputs[name]:
                path = self.dir / relative
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        _write_json_atomic(self.stages_path, stages)


def _headline(report_dir: pathlib.Path) -> dict[str, Any]:
    """Return the numbers RESULTS.md quotes, for each question of one audit."""
    summary = json.loads((report_dir / "summary.json").read_text())
    out = {}
    for question, report in summary["questions"].items():
        level = report["levels"]["intersectional"]
        metrics = level["metrics"]
        prefix = f"p/{report['target_option']}/max_gap"
        out[question] = {
            "option": report["target_option"],
            "max_gap": metrics.get(f"{prefix}/value"),
            "max_gap_ci": [metrics.get(f"{prefix}/ci_low"), metrics.get(f"{prefix}/ci_high")],
            "groups": [metrics.get(f"{prefix}/group_high"), metrics.get(f"{prefix}/group_low")],
            "mean_vignette_gap": metrics.get("gap/mean"),
            "flip_rate": metrics.get("flip_rate"),
            "accuracy": level["overall"].get("accuracy"),
            "friedman_p": metrics.get("friedman/p_value"),
        }
    return out


def _compare(before: pathlib.Path, after: pathlib.Path) -> dict[str, Any]:
    summary_before = json.loads((before / "summary.json").read_text())
    summary_after = json.loads((after / "summary.json").read_text())
    result: dict[str, Any] = {"before": _headline(before), "after": _headline(after), "paired": {}}
    for question in summary_before["questions"]:
        if question not in summary_after["questions"]:
            continue
        gaps = [
            {v: g for v, g in s["questions"][question]["levels"]["intersectional"]["vignette_gaps"].items()
             if isinstance(g, (int, float))}
            for s in (summary_before, summary_after)
        ]
        try:
            result["paired"][question] = _core.stats.compare_vignette_gaps(gaps[0], gaps[1])
        except _core.DataError as error:
            result["paired"][question] = {"error": str(error)}
    return result


def pipeline(
    config: PipelineConfig | None = None,
    out: str | os.PathLike = "run",
    from_stage: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    **options: Any,
) -> PipelineResult:
    """Run (or resume) the audit, prefs, align, re-audit loop into `out`.

    Pass a PipelineConfig, or its fields as keywords (model=, teacher=, task=,
    data=, ...). See the module documentation for the stages.
    """
    from .report import render_comparison, render_report

    if config is None:
        config = PipelineConfig(**options)
    elif options:
        config = dataclasses.replace(config, **options)
    config = config.resolved()
    out_dir = pathlib.Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(out_dir)

    provenance = _provenance(config)
    config_path = out_dir / "config.json"
    changed: list[str] = []
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous.get("config") != provenance["config"] or previous.get("files") != provenance["files"]:
            changed = sorted(
                k for k in set(previous.get("config", {})) | set(provenance["config"])
                if previous.get("config", {}).get(k) != provenance["config"].get(k)
            ) or ["file hashes"]
            if from_stage is None:
                raise _core.ConfigError(
                    f"{out_dir} contains a pipeline run with other settings ({', '.join(changed)}); use a new --out, "
                    "or --from STAGE to rerun from a stage with the new settings"
                )
    if from_stage is not None:
        if from_stage not in STAGES:
            raise _core.ConfigError(f"unknown stage {from_stage!r}; stages: {', '.join(STAGES)}")
        run.discard_from(from_stage)
        earlier_stages = [name for name in STAGES[: STAGES.index(from_stage)] if name in run.finished()]
        if changed and earlier_stages:
            log(f"note: {', '.join(earlier_stages)} keep their outputs from the earlier run, made before these "
                f"settings changed: {', '.join(changed)}; use a new --out to rerun every stage with the new settings")
    provenance["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _write_json_atomic(config_path, provenance)
    done = run.finished()

    def stage(name: str) -> bool:
        if name in done:
            log(f"[{name}] finished earlier, skipped")
            return False
        log(f"[{name}]")
        return True

    task = load_task(config.task, config.data)
    audit_common = dict(
        task=task, data=config.data, prompting=config.prompting, seed=config.seed,
        bootstrap_replicates=config.bootstrap_replicates, progress=progress,
    )

    # split
    split_path = out_dir / "split.json"
    if stage("split"):
        from .prefs import split_vignettes

        train, test = split_vignettes([v.id for v in task.vignettes], config.test_fraction, config.split_seed)
        _write_json_atomic(split_path, {"train": train, "test": test, "seed": config.split_seed,
                                        "test_fraction": config.test_fraction})
        run.mark("split", train=len(train), test=len(test))
    split = json.loads(split_path.read_text())
    log(f"  {len(split['train'])} train and {len(split['test'])} test vignettes")

    target = _core.CausalLM.load(config.model)

    if stage("audit_before"):
        audit(model=target, out=out_dir / "audit_before", vignettes=split["test"], **audit_common)
        render_report(out_dir / "audit_before")
        run.mark("audit_before")

    teacher_is_model = config.teacher != "self" and pathlib.Path(config.teacher).exists() and not config.teacher.endswith(".jsonl")
    if stage("audit_teacher"):
        if teacher_is_model:
            audit(model=config.teacher, out=out_dir / "audit_teacher", vignettes=split["test"], **audit_common)
            render_report(out_dir / "audit_teacher")
        run.mark("audit_teacher", audited=teacher_is_model)

    from .align import align as align_model
    from .prefs import build_preferences

    prefs_path = out_dir / "prefs.jsonl"
    if stage("prefs"):
        prefs_kwargs = dict(
            target=target, teacher=config.teacher,
            encoder=config.encoder, task=task, data=config.data, out=prefs_path, vignettes=split["train"],
            candidates=config.candidates, pairing=config.pairing, teacher_sees=config.teacher_sees,
            seed=config.seed, draws_per_vignette=config.draws_per_vignette, max_new_tokens=config.max_new_tokens,
            progress=progress,
        )
        if config.teacher_model:
            prefs_kwargs["teacher_model"] = config.teacher_model
        prefs_kwargs.update(config.prefs_options)
        built = build_preferences(**prefs_kwargs)
        run.mark("prefs", records=built.written, prompts=built.prompts, dropped=built.dropped,
                 mean_margin=built.mean_margin)

    adapter_dir = out_dir / "adapter"
    if stage("align"):
        # A fresh copy of the target gets the adapters, so `target` stays the base
        # model for the transfer audits. Checkpoints let an interrupted training
        # resume; without one, resume=True starts at step 0.
        align_kwargs = dict(model=config.model, prefs=prefs_path, out=adapter_dir, method=config.method,
                            preset=config.preset, progress=progress, checkpoint_every=CHECKPOINT_EVERY,
                            resume=True)
        align_kwargs.update(config.align_options)
        trained = align_model(**align_kwargs)
        run.mark("align", steps=trained.steps, resumed_from_step=trained.resumed_from_step)

    if stage("audit_after"):
        audit(model=config.model, adapter=adapter_dir, out=out_dir / "audit_after", vignettes=split["test"],
              **audit_common)
        render_report(out_dir / "audit_after")
        run.mark("audit_after")

    if stage("transfer"):
        for name, data in config.eval_tasks.items():
            other = load_task(name if name in TASK_FOLDERS else "generic", data)
            common = dict(task=other, data=data, prompting=config.prompting, seed=config.seed,
                          bootstrap_replicates=config.bootstrap_replicates, progress=progress)
            base = out_dir / "transfer" / name
            audit(model=target, out=base / "before", **common)
            audit(model=config.model, adapter=adapter_dir, out=base / "after", **common)
            render_comparison(base / "before", base / "after", base / "report.html")
        run.mark("transfer", tasks=list(config.eval_tasks))

    comparison_path = out_dir / "comparison.json"
    if stage("report"):
        comparison = _compare(out_dir / "audit_before", out_dir / "audit_after")
        if (out_dir / "audit_teacher" / "summary.json").exists():
            comparison["teacher"] = _headline(out_dir / "audit_teacher")
        comparison["transfer"] = {
            name: _compare(out_dir / "transfer" / name / "before", out_dir / "transfer" / name / "after")
            for name in config.eval_tasks
        }
        _write_json_atomic(comparison_path, comparison)
        render_comparison(out_dir / "audit_before", out_dir / "audit_after", out_dir / "report.html")
        run.mark("report")
    comparison = json.loads(comparison_path.read_text())
    return PipelineResult(out_dir=out_dir, comparison=comparison)


def print_comparison(comparison: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """Print the before/after headline numbers as a short table."""

    def f(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

    log(f"{'question':<10} {'metric':<18} {'before':>8} {'after':>8}")
    for question, before in comparison["before"].items():
        after = comparison["after"].get(question, {})
        for key, label in (("max_gap", "max group gap"), ("mean_vignette_gap", "mean vignette gap"),
                           ("flip_rate", "flip rate"), ("accuracy", "accuracy")):
            log(f"{question:<10} {label:<18} {f(before.get(key)):>8} {f(after.get(key)):>8}")
        paired = comparison["paired"].get(question, {})
        if "wilcoxon" in paired:
            log(f"{question:<10} {'paired Wilcoxon p':<18} {f(paired['wilcoxon'].get('p_value')):>17}")
