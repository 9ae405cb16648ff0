"""Byte-level BPE under each supported pre-tokenizer against Hugging Face
tokenizers, on the tiny vocabulary in tests/golden/text/bpe_tiny.json: long
runs of one character class, and random strings over a mixed alphabet."""

import json
import pathlib
import random

import pytest

import medfair._core as core

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden" / "text"
VARIANTS = ["gpt2", "smollm", "llama3", "llama3_merging", "qwen2", "prefix_space", "digits_grouped"]
ALPHABET = list("ab Z9 0'sll\n\r\t  .,!?-") + ["é", "ß", "日", "本", "😀", "\u00a0", "\u2028", "<|im_end|>", "İ", "ǅ"]
LONG_RUNS = ["a" * 200_000, " " * 200_000, "1" * 200_000, "\n" * 200_000, " \n" * 100_000, "é😀" * 50_000, "'s" * 100_000]


def build(name):
    import tokenizers

    base = json.loads((GOLDEN / "bpe_tiny.json").read_text(encoding="utf-8"))
    variant = json.loads((GOLDEN / "bpe_golden.json").read_text(encoding="utf-8"))[name]
    base["pre_tokenizer"] = variant["pre_tokenizer"]
    base["model"]["ignore_merges"] = variant["ignore_merges"]
    text = json.dumps(base)
    return core.BPETokenizer.from_tokenizer_json_string(text, name), tokenizers.Tokenizer.from_str(text)


@pytest.fixture(scope="module", params=VARIANTS)
def pair(request):
    return build(request.param)


def test_long_runs(pair):
    ours, reference = pair
    for text in LONG_RUNS:
        assert ours.encode(text) == reference.encode(text, add_special_tokens=False).ids, repr(text[:8])


def test_random_strings(pair):
    ours, reference = pair
    rng = random.Random(1234)
    for _ in range(500):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))
        ids = ours.encode(text)
        assert ids == reference.encode(text, add_special_tokens=False).ids, repr(text)
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=False), repr(text)
