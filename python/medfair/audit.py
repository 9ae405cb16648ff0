"""The counterfactual audit from Python: ``medfair.audit(...)``.

Scoring and statistics run in C++ (``FairnessEvaluator``); this module loads
the model and task, shows progress, adds provenance to summary.json and turns
the results into pandas DataFrames.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import tempfile
from typing import Any, Callable, Sequence

from . import _core
from ._defaults import default_model_path

PROJECT_DATA = pathlib.Path(__file__).resolve().parent / "data"


@dataclasses.dataclass
class AuditReport:
    """A finished audit: its folder, summary and per-prompt records."""

    out_dir: pathlib.Path
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    resumed_records: int = 0

    @property
    def results(self):
        """One row per prompt and question (results.jsonl) as a DataFrame."""
        import pandas as pd

        rows = []
        for record in self.records:
            row = {k: v for k, v in record.items() if k not in ("attributes", "options", "probabilities", "log_probs")}
            row.update(record["attributes"])
            for option, probability in zip(record["options"], record["probabilities"]):
                row[f"p_{option}"] = probability
            rows.append(row)
        return pd.DataFrame(rows)

    def groups(self, question: str | None = None, level: str = "intersectional"):
        """Per-group means, intervals and accuracy of one question as a DataFrame."""
        import pandas as pd

        report = self._question(question)
        found = self._level(report, level)
        rows = []
        for name in found["groups"]:
            entry = found["by_group"][name]
            rows.append({"group": name, **entry})
        return pd.DataFrame(rows)

    def metrics(self, question: str | None = None, level: str = "intersectional") -> dict[str, Any]:
        """Return the metric keys of one level (max gaps, per-vignette gaps, flip rate, tests), as in docs/metrics.md."""
        return self._level(self._question(question), level)["metrics"]

    def max_gap(self, question: str | None = None, level: str = "intersectional") -> dict[str, Any]:
        """Return the headline: the largest difference in the target option's mean probability between groups."""
        report = self._question(question)
        metrics = self._level(report, level)["metrics"]
        prefix = f"p/{report['target_option']}/max_gap"
        return {
            "option": report["target_option"],
            "value": metrics[f"{prefix}/value"],
            "ci_low": metrics.get(f"{prefix}/ci_low"),
            "ci_high": metrics.get(f"{prefix}/ci_high"),
            "group_high": metrics[f"{prefix}/group_high"],
            "group_low": metrics[f"{prefix}/group_low"],
        }

    def _question(self, question: str | None) -> dict[str, Any]:
        questions = self.summary["questions"]
        if question is None:
            question = next(iter(questions))
        if question not in questions:
            raise KeyError(f"no question {question!r}; questions: {', '.join(questions)}")
        return questions[question]

    @staticmethod
    def _level(report: dict[str, Any], level: str) -> dict[str, Any]:
        if level not in report["levels"]:
            raise KeyError(f"no level {level!r}; levels: {', '.join(report['levels'])}")
        return report["levels"][level]


def _write_json_atomic(path: pathlib.Path, value: Any) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    # mkstemp creates the file readable by its owner only; give it the usual
    # permissions of a new file instead.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(handle, 0o666 & ~umask)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(value, stream, indent=2)
        stream.write("\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def _data_files(path: pathlib.Path) -> list[pathlib.Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".csv", ".jsonl", ".json"))


def load_task(task: str, data: str | os.PathLike | None):
    """Load a shipped task definition ("qpain", "nurse", "healer") or a generic file."""
    if data is None:
        raise _core.ConfigError(f"task {task!r} needs --data: the folder or file with its vignettes")
    return _core.load_task(task, str(data))


def audit(
    model: str | os.PathLike | _core.CausalLM | None = None,
    task: str = "qpain",
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "audit",
    prompting: str = "zero-shot",
    axes: Sequence[str] = (),
    seed: int = 0,
    shots: int = 2,
    batch_size: int = 16,
    reuse_prefix: bool = True,
    vignettes: Sequence[str] = (),
    bootstrap_replicates: int = 2000,
    confidence: float = 0.95,
    dtype: str = "float32",
    progress: bool | Callable[[int, int], None] = True,
    adapter: str | os.PathLike | None = None,
    endpoint: str | None = None,
    scoring: str = "logprobs",
    samples: int = 10,
    temperature: float = 1.0,
    max_tokens: int = 32,
    chat_template: str = "chatml",
    api_key_env: str = "OPENAI_API_KEY",
) -> AuditReport:
    """Audit a model on a task and write results.jsonl and summary.json to ``out``.

    ``model`` is a .gguf file, a Hugging Face folder, a loaded CausalLM, or None
    for the default SmolLM2-135M-Instruct; ``adapter`` is a LoRA adapter folder
    to apply to it. With ``endpoint`` (an OpenAI-compatible API root such as
    ``http://127.0.0.1:8000/v1``), ``model`` is instead the served model's name
    and scoring happens on the server: ``scoring="logprobs"`` reads echoed
    prompt log-probabilities from /completions (vLLM), rendering prompts with
    ``chat_template``; ``scoring="sampled"`` samples ``samples`` answers per
    prompt from /chat/completions and counts the options they name. A run
    interrupted part way resumes when called again with the same ``out`` and
    settings.
    """
    import torch

    task_definition = load_task(task, data) if isinstance(task, str) else task
    modifier = _core.PromptModifier(axes=list(axes), seed=seed, format=prompting.replace("-", "_"), shots=shots)
    statistics = dict(
        vignettes=list(vignettes), bootstrap_replicates=bootstrap_replicates, confidence=confidence
    )
    if endpoint is not None:
        scorer = remote_scorer(
            endpoint,
            model,
            scoring=scoring,
            samples=samples,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            chat_template=chat_template,
            api_key_env=api_key_env,
        )
        evaluator = _core.FairnessEvaluator(scorer, modifier, **statistics)
    else:
        if isinstance(model, _core.CausalLM):
            loaded = model
        else:
            path = str(model) if model is not None else default_model_path()
            if adapter is not None:
                loaded = _core.CausalLM.load(path, dtype=dtype, adapter=str(adapter))
            else:
                loaded = _core.CausalLM.load(path, dtype=dtype)
        evaluator = _core.FairnessEvaluator(
            loaded, modifier, batch_size=batch_size, reuse_prefix=reuse_prefix, **statistics
        )
    out_dir = pathlib.Path(out)
    callback, bar = _progress_callback(progress)
    try:
        summary_text, resumed = evaluator._run(task_definition, str(out_dir), callback)
    finally:
        if bar is not None:
            bar.close()
    summary = json.loads(summary_text)
    from . import __version__

    settings = summary["settings"]
    if data is not None:
        settings["data_files"] = [
            {"path": str(p), "sha256": _core.sha256_file(str(p))} for p in _data_files(pathlib.Path(data))
        ]
    if adapter is not None:
        settings["adapter"] = str(adapter)
    settings["medfair_version"] = __version__
    settings["torch_version"] = torch.__version__
    settings["threads"] = torch.get_num_threads()
    settings["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _write_json_atomic(out_dir / "summary.json", summary)
    records = json.loads(_core._read_results(str(out_dir / "results.jsonl")))
    return AuditReport(out_dir=out_dir, summary=summary, records=records, resumed_records=resumed)


def remote_scorer(
    endpoint: str,
    model: str | os.PathLike | None,
    scoring: str = "logprobs",
    samples: int = 10,
    temperature: float = 1.0,
    max_tokens: int = 32,
    seed: int = 0,
    chat_template: str = "chatml",
    api_key_env: str = "OPENAI_API_KEY",
):
    """Build the scorer of a served model: "logprobs" (completions with echo) or "sampled" (chat answers)."""
    if model is None or isinstance(model, _core.CausalLM):
        raise _core.ConfigError("an audit through an endpoint needs the served model's name as model=")
    options = _core.EndpointOptions(
        base_url=endpoint, model=str(model), http=_core.HttpOptions(api_key_env=api_key_env)
    )
    if scoring == "logprobs":
        return _core.CompletionsOptionScorer(options, chat_template=chat_template)
    if scoring == "sampled":
        params = _core.GenerationParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
        return _core.SampledOptionScorer(options, samples=samples, params=params)
    raise _core.ConfigError(f"scoring must be 'logprobs' or 'sampled', got {scoring!r}")


def _progress_callback(progress):
    if callable(progress):
        return progress, None
    if not progress:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="prompt", desc="audit", dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar
