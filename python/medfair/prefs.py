"""Preference data from Python: ``medfair.build_preferences(...)``.

Generation, ranking and the JSONL output happen in C++ (``PreferenceBuilder``);
this module resolves the models, the teacher and the vignette split, shows
progress and returns the records as a pandas DataFrame.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable, Sequence

from . import _core
from ._defaults import default_encoder_path, default_model_path
from .audit import load_task

SPLITS = ("train", "test", "all")


@dataclasses.dataclass
class PreferenceResult:
    """A finished preference run: the JSONL file, its records and the counts."""

    path: pathlib.Path
    records: list[dict[str, Any]]
    prompts: int
    resumed: int
    dropped: dict[str, int]
    cache_path: pathlib.Path | None
    seconds: float

    @property
    def written(self) -> int:
        """Number of records in the file."""
        return len(self.records)

    @property
    def mean_margin(self) -> float | None:
        """Mean similarity margin (chosen minus rejected) over the records."""
        if not self.records:
            return None
        return sum(r["margin"] for r in self.records) / len(self.records)

    @property
    def dataframe(self):
        """One row per record, with the attributes as columns and without the long texts' lists."""
        import pandas as pd

        rows = []
        for record in self.records:
            row = {k: v for k, v in record.items() if k not in ("attributes", "candidates", "seeds")}
            row.update(record["attributes"])
            rows.append(row)
        return pd.DataFrame(rows)


def split_vignettes(ids: Sequence[str], test_fraction: float = 0.5, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split vignette ids into (train, test) by a seeded hash of each id."""
    result = _core.split_vignettes(list(ids), test_fraction, seed)
    return list(result.train), list(result.test)


def select_vignettes(
    task_definition, split: str, test_fraction: float, split_seed: int, vignettes: Sequence[str]
) -> list[str]:
    """Return the vignette ids a run uses: ``vignettes`` when given, else one side of the split (or all)."""
    if vignettes:
        return list(vignettes)
    if split not in SPLITS:
        raise _core.ConfigError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    ids = [v.id for v in task_definition.vignettes]
    if split == "all":
        return ids
    train, test = split_vignettes(ids, test_fraction, split_seed)
    return train if split == "train" else test


def _progress_callback(progress):
    if callable(progress):
        return progress, None
    if not progress:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="prompt", desc="prefs", dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar


def _load_model(spec, dtype: str):
    if isinstance(spec, _core.CausalLM):
        return spec
    return _core.CausalLM.load(str(spec) if spec is not None else default_model_path(), dtype=dtype)


def make_teacher(
    spec,
    target,
    sampling,
    cache,
    teacher_model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    dtype: str = "float32",
    http_options: dict[str, Any] | None = None,
):
    """Build a teacher from its spec: "self", a loaded CausalLM, a .gguf file or
    Hugging Face folder, an http(s):// base URL of an OpenAI-compatible server
    (with ``teacher_model``), or a .jsonl file of references."""
    if isinstance(spec, _core.Teacher):
        return spec
    if isinstance(spec, _core.CausalLM):
        return _core.LocalTeacher(spec, sampling, cache, is_self=spec is target)
    text = str(spec)
    if text == "self":
        return _core.LocalTeacher(target, sampling, cache, is_self=True)
    if text.startswith(("http://", "https://")):
        if not teacher_model:
            raise _core.ConfigError(
                f"teacher {text} is an endpoint, so it needs teacher_model (--teacher-model): the model name to request"
            )
        http = _core.HttpOptions(api_key_env=api_key_env, **(http_options or {}))
        endpoint = _core.EndpointOptions(base_url=text.rstrip("/"), model=teacher_model, http=http)
        return _core.EndpointTeacher(endpoint, sampling, cache)
    path = pathlib.Path(text)
    if path.suffix in (".jsonl", ".ndjson"):
        return _core.FileTeacher(str(path))
    if path.suffix == ".gguf" or path.is_dir():
        return _core.LocalTeacher(_core.CausalLM.load(str(path), dtype=dtype), sampling, cache)
    raise _core.ConfigError(
        f"teacher {text!r} is not recognised; use 'self', a .gguf file, a Hugging Face folder, "
        "an http(s):// base URL or a .jsonl file of references"
    )


def build_preferences(
    target: str | os.PathLike | _core.CausalLM | None = None,
    teacher: Any = "self",
    encoder: str | os.PathLike | _core.SentenceEncoder | None = None,
    task: Any = "qpain",
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "prefs.jsonl",
    split: str = "train",
    test_fraction: float = 0.5,
    split_seed: int = 0,
    vignettes: Sequence[str] = (),
    candidates: int = 2,
    pairing: str = "ranked",
    teacher_sees: str = "neutral",
    format: str = "plain",  # noqa: A002  (the option's name in the CLI and docs)
    min_margin: float = 0.0,
    drop_identical: bool = True,
    drop_off_format: bool = False,
    max_new_tokens: int = 128,
    temperature: float = 0.7,
    top_p: float = 0.9,
    top_k: int = 0,
    repetition_penalty: float = 1.0,
    teacher_max_new_tokens: int | None = None,
    teacher_temperature: float = 0.0,
    teacher_model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    teacher_http: dict[str, Any] | None = None,
    draws_per_vignette: int = 1,
    prompting: str = "zero-shot",
    axes: Sequence[str] = (),
    seed: int = 0,
    cache: bool | str | os.PathLike = True,
    batch_size: int = 16,
    prompts_per_step: int = 8,
    dtype: str = "float32",
    progress: bool | Callable[[int, int], None] = True,
) -> PreferenceResult:
    """Build preference pairs and write them to ``out`` (JSON Lines).

    ``target`` is a .gguf file, a Hugging Face folder, a loaded CausalLM, or None
    for SmolLM2-135M-Instruct; ``encoder`` a sentence-transformers folder or None
    for all-MiniLM-L6-v2. ``teacher`` is described in :func:`make_teacher`. The
    run uses ``vignettes`` when given, else the ``split`` side ("train", "test"
    or "all") of split_vignettes(ids, test_fraction, split_seed). Generations
    are cached in ``out`` + ".cache.sqlite" (``cache=True``), in a given path,
    or nowhere (``cache=False``). A run interrupted part way resumes when
    called again with the same ``out`` and settings.
    """
    started = time.monotonic()
    target_model = _load_model(target, dtype)
    if isinstance(encoder, _core.SentenceEncoder):
        sentence_encoder = encoder
    else:
        sentence_encoder = _core.SentenceEncoder.load(str(encoder) if encoder is not None else default_encoder_path())
    task_definition = load_task(task, data) if isinstance(task, str) else task

    out_path = pathlib.Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path = None
    if cache is True:
        cache_path = out_path.with_name(out_path.name + ".cache.sqlite")
    elif cache:
        cache_path = pathlib.Path(cache)
    generation_cache = _core.GenerationCache(str(cache_path)) if cache_path is not None else None

    sampling = _core.SamplingOptions(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
        batch_size=batch_size,
    )
    teacher_sampling = _core.SamplingOptions(
        max_new_tokens=teacher_max_new_tokens or max_new_tokens,
        temperature=teacher_temperature,
        batch_size=batch_size,
    )
    teacher_object = make_teacher(
        teacher, target_model, teacher_sampling, generation_cache, teacher_model, api_key_env, dtype, teacher_http
    )

    options = _core.PreferenceOptions()
    options.candidates = candidates
    options.pairing = pairing
    options.teacher_sees = teacher_sees
    options.format = format
    options.min_margin = min_margin
    options.drop_identical = drop_identical
    options.drop_off_format = drop_off_format
    options.sampling = sampling
    options.seed = seed
    options.draws_per_vignette = draws_per_vignette
    options.vignettes = select_vignettes(task_definition, split, test_fraction, split_seed, vignettes)
    options.axes = list(axes)
    options.prompting = prompting.replace("-", "_")
    options.prompts_per_step = prompts_per_step

    callback, bar = _progress_callback(progress)
    try:
        counts, lines = _core._build_preferences(
            target_model, teacher_object, sentence_encoder, task_definition, str(out_path), options,
            generation_cache, callback,
        )
    finally:
        if bar is not None:
            bar.close()
    records = [json.loads(line) for line in lines.splitlines() if line]
    dropped = {key[len("dropped_"):]: value for key, value in counts.items() if key.startswith("dropped_")}
    return PreferenceResult(
        path=out_path,
        records=records,
        prompts=counts["prompts"],
        resumed=counts["resumed"],
        dropped=dropped,
        cache_path=cache_path,
        seconds=time.monotonic() - started,
    )
