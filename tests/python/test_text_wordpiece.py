"""WordPiece (all-MiniLM-L6-v2) against transformers' tokenizer for that folder."""

import os
import pathlib

import pytest

import medfair._core as core
from text_support import shared_strings

EDGE_CASES = [
    "Héllo, WÖRLD! naïve café résumé",
    "日本語のテキストと中文文本",
    "emoji 😀🎉 stays unknown",
    "numbers 1234567890123456789 and 3.14159",
    "don't won't they'll   multiple   spaces\n\ttabs",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 150,
    "[CLS] special [SEP] tokens [MASK] inside",
    "control\x00chars\x07removed\u200b",
    "ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ",
    "",
]


@pytest.fixture(scope="module")
def minilm_dir():
    path = os.environ.get("MEDFAIR_MINILM_DIR")
    if not path:
        pytest.fail("MEDFAIR_MINILM_DIR is not set; run eval \"$(python scripts/asset_paths.py)\"")
    return pathlib.Path(path)


@pytest.fixture(scope="module")
def reference(minilm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir))


@pytest.fixture(scope="module", params=["tokenizer.json", "vocab.txt"])
def tokenizer(request, minilm_dir):
    options = core.WordPieceOptions()
    options.max_length = 0
    if request.param == "tokenizer.json":
        return core.WordPieceTokenizer.from_tokenizer_json(minilm_dir / "tokenizer.json", options)
    return core.WordPieceTokenizer.from_vocab_txt(minilm_dir / "vocab.txt", options)


def test_vignette_ids(tokenizer, reference):
    for text in shared_strings():
        assert tokenizer.encode(text, add_special=True) == reference(text)["input_ids"], text[:60]
        assert tokenizer.encode(text) == reference(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_case_ids(text, tokenizer, reference):
    assert tokenizer.encode(text, add_special=True) == reference(text)["input_ids"]


@pytest.mark.parametrize("text", EDGE_CASES + ["The patient's pain is 8/10, isn't it?"])
def test_decode(text, tokenizer, reference):
    ids = reference(text)["input_ids"]
    assert tokenizer.decode(ids) == reference.decode(ids)
    assert tokenizer.decode(ids, skip_special=True) == reference.decode(ids, skip_special_tokens=True)


def test_truncation(minilm_dir, reference):
    # Without options the tokenizer.json's truncation (128 tokens) applies.
    tokenizer = core.WordPieceTokenizer.from_tokenizer_json(minilm_dir / "tokenizer.json")
    long_texts = [t for t in shared_strings() if len(reference(t)["input_ids"]) > 128]
    assert long_texts, "expected some vignettes longer than 128 tokens"
    for text in long_texts:
        expected = reference(text, truncation=True, max_length=128)["input_ids"]
        assert tokenizer.encode(text, add_special=True) == expected
        assert len(expected) == 128


def test_special_ids(tokenizer):
    assert tokenizer.cls_id == 101
    assert tokenizer.sep_id == 102
    assert tokenizer.pad_id == 0
    assert tokenizer.unk_id == 100
    assert tokenizer.kind == "wordpiece"


def test_load_tokenizer_json_dispatch(minilm_dir):
    assert core.load_tokenizer_json(minilm_dir / "tokenizer.json").kind == "wordpiece"


def test_decode_out_of_range(tokenizer):
    with pytest.raises(core.DataError, match="token id 30522 is out of range"):
        tokenizer.decode([101, 30522])


def test_random_strings(tokenizer, reference):
    import random

    alphabet = list("abcXYZ019 .,;'\"()-\n\t") + ["é", "Å", "ß", "ñ", "日", "本", "😀", "\u00a0", "\u200b", "\x00", "\x07",
                                             "ﬁ", "İ", "Σ", "ǅ", "①", "—", "¿", "\u0301", "[SEP]", "##"]
    rng = random.Random(99)
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert tokenizer.encode(text, add_special=True) == reference(text)["input_ids"], repr(text)
