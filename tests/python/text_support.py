"""Shared helpers of the text-layer tests: the real vignette strings and the
SmolLM2 GGUF vocabulary, read with gguf-py (a test-only reference)."""

import csv
import os
import pathlib

import pytest

SHARED_DATA = pathlib.Path(
    os.environ.get("MEDFAIR_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
)


def shared_strings() -> list[str]:
    """Return every Q-Pain vignette and question, nurse prompt and text, and
    Healer case one-liner, in file order, without duplicates."""
    strings: list[str] = []
    seen: set[str] = set()

    def take(path: pathlib.Path, columns: list[str]) -> None:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                for column in columns:
                    value = row.get(column)
                    if value and value not in seen:
                        seen.add(value)
                        strings.append(value)

    for path in sorted((SHARED_DATA / "qpain").glob("*.csv")):
        take(path, ["Vignette", "Question"])
    for path in sorted((SHARED_DATA / "nurse_bias").glob("*.csv")):
        take(path, ["prompt", "text"])
    for path in sorted((SHARED_DATA / "healer").glob("*.csv")):
        take(path, ["Case one liner"])
    if not strings:
        pytest.fail(f"no vignette strings found under {SHARED_DATA}; set MEDFAIR_SHARED_DATA")
    return strings


def smollm2_gguf() -> pathlib.Path:
    path = os.environ.get("MEDFAIR_SMOLLM2_GGUF")
    if not path:
        pytest.fail("MEDFAIR_SMOLLM2_GGUF is not set; run eval \"$(python scripts/asset_paths.py)\"")
    return pathlib.Path(path)


def read_gguf_tokenizer_fields(path: pathlib.Path) -> dict:
    """Return the tokenizer.* metadata of a GGUF file as Python values."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            fields[key] = field.contents()
    return fields
