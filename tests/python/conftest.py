"""Shared fixtures: paths to the real data and models, and the reference
implementations (transformers) that medfair's results are compared with."""

from __future__ import annotations

import csv
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def shared_data_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("MEDFAIR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def smollm2_gguf() -> pathlib.Path:
    from medfair._defaults import default_model_path

    return pathlib.Path(os.environ.get("MEDFAIR_SMOLLM2_GGUF") or default_model_path())


def _read_csv(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        return list(csv.DictReader(stream))


def vignette_texts() -> list[str]:
    """Every vignette and question of the shared data, as raw strings.

    Q-Pain: the Vignette and Question columns; nurse triage: the prompt and text
    columns; Healer: the case one-liners.
    """
    data = shared_data_dir()
    texts: list[str] = []
    for path in sorted((data / "qpain").glob("*.csv")):
        for row in _read_csv(path):
            texts += [row["Vignette"], row["Question"]]
    for row in _read_csv(data / "nurse_bias" / "unconscious_bias_nurses_final.csv"):
        texts += [row["prompt"], row["text"]]
    for path in sorted((data / "healer").glob("*.csv")):
        for row in _read_csv(path):
            if row.get("Case one liner"):
                texts.append(row["Case one liner"])
    # The expanded nurse file repeats the same vignette text across statements.
    return list(dict.fromkeys(texts))


@pytest.fixture(scope="session")
def gguf_path() -> pathlib.Path:
    return smollm2_gguf()


@pytest.fixture(scope="session")
def texts() -> list[str]:
    found = vignette_texts()
    assert len(found) > 100, f"expected the shared vignette data under {shared_data_dir()}"
    return found


@pytest.fixture(scope="session")
def hf_reference(gguf_path):
    """transformers' own loading of the same GGUF file (dequantized to float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="session")
def smollm2(gguf_path):
    import medfair

    return medfair.CausalLM.load(str(gguf_path))
