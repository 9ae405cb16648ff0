"""Regenerate the text-layer golden files from strings written here.

Trains a tiny byte-level BPE with Hugging Face `tokenizers` on TRAINING_TEXT,
saves it as bpe_tiny.json, and records the ids that `tokenizers` produces for
CASES under several pre-tokenizers (bpe_golden.json). wordpiece_golden.json
contains the ids transformers' tokenizer for $MEDFAIR_MINILM_DIR gives the same
CASES. Run from the repository root:

    python tests/golden/text/make_golden.py
"""

import copy
import json
import os
import pathlib

import tokenizers
from tokenizers import models, pre_tokenizers, decoders, trainers

HERE = pathlib.Path(__file__).resolve().parent

TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog while the nurse writes notes.
Patients waited 45 minutes; one reported pain of 7/10, another 3/10.
Don't worry, we'll check it again. They've said you're fine, I'm told.
Residents, attendings and nurses discussed 1234 cases in 2023 and 2024.
Newlines\nand\ttabs   and  runs   of spaces appear in real notes too.
Café, naïve, résumé, 日本語, 中文, 한국어 and emoji 😀 test Unicode.
"""

CASES = [
    "The quick brown fox.",
    "pain 7/10 at 12345678 o'clock",
    "a  1 b   22 c    333",
    "Don't WE'LL they've I'M",
    "line\nline\n\n\tindent  \r\n",
    "naïve café 日本語 😀🎉",
    "<|im_start|>user\nhello<|im_end|>\n",
    "special <|im_end|>inside<|endoftext|>",
    "   ",
    "",
]

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
BYTE_LEVEL_NO_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}

# name -> (pre_tokenizer, ignore_merges, GGUF tokenizer.ggml.pre with the same rule or None)
VARIANTS = {
    "gpt2": (BYTE_LEVEL, False, "gpt2"),
    "smollm": (
        {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
        False,
        "smollm",
    ),
    "llama3": (
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
                BYTE_LEVEL_NO_REGEX,
            ],
        },
        True,
        "llama-bpe",
    ),
    "llama3_merging": (None, False, None),
    "qwen2": (
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
                BYTE_LEVEL_NO_REGEX,
            ],
        },
        False,
        "qwen2",
    ),
    "prefix_space": ({**BYTE_LEVEL, "add_prefix_space": True}, False, None),
    "digits_grouped": (
        {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": False}, BYTE_LEVEL]},
        False,
        None,
    ),
    "split_removed": (
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": False},
                BYTE_LEVEL_NO_REGEX,
            ],
        },
        False,
        None,
    ),
    "split_merged_next": (
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": r"\s"}, "behavior": "MergedWithNext", "invert": False},
                BYTE_LEVEL_NO_REGEX,
            ],
        },
        False,
        None,
    ),
    "split_merged_previous": (
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": r"\s"}, "behavior": "MergedWithPrevious", "invert": False},
                BYTE_LEVEL_NO_REGEX,
            ],
        },
        False,
        None,
    ),
    "split_contiguous": (
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": r"\s"}, "behavior": "Contiguous", "invert": False},
                BYTE_LEVEL_NO_REGEX,
            ],
        },
        False,
        None,
    ),
}


def train_tiny_bpe() -> dict:
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([TRAINING_TEXT] * 10, trainer=trainer)
    return json.loads(tokenizer.to_str())


def main() -> None:
    base = train_tiny_bpe()
    (HERE / "bpe_tiny.json").write_text(json.dumps(base, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    golden = {}
    for name, (pre, ignore_merges, gguf_pre) in VARIANTS.items():
        spec = copy.deepcopy(base)
        if pre is None:
            pre = VARIANTS["llama3"][0]
        spec["pre_tokenizer"] = pre
        spec["model"]["ignore_merges"] = ignore_merges
        tokenizer = tokenizers.Tokenizer.from_str(json.dumps(spec))
        cases = []
        for text in CASES:
            encoding = tokenizer.encode(text, add_special_tokens=False)
            cases.append(
                {
                    "text": text,
                    "ids": encoding.ids,
                    "decoded": tokenizer.decode(encoding.ids, skip_special_tokens=False),
                    "decoded_skip_special": tokenizer.decode(encoding.ids, skip_special_tokens=True),
                }
            )
        golden[name] = {"pre_tokenizer": pre, "ignore_merges": ignore_merges, "gguf_pre": gguf_pre, "cases": cases}
    (HERE / "bpe_golden.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    minilm = os.environ.get("MEDFAIR_MINILM_DIR")
    if minilm:
        from transformers import AutoTokenizer

        reference = AutoTokenizer.from_pretrained(minilm)
        cases = [{"text": text, "ids": reference(text)["input_ids"]} for text in CASES + [TRAINING_TEXT]]
        (HERE / "wordpiece_golden.json").write_text(
            json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
