"""SentencePiece: a small BPE model trained in the test on text written here,
loaded from the .model file and from GGUF-style vocab data, compared with the
sentencepiece Python package. transformers 5's LlamaTokenizer is not the
reference here: it converts the model to a `tokenizers` BPE that adds no BOS by
default and splits runs of spaces differently from libsentencepiece."""

import pathlib

import pytest

import medfair._core as core

TRAINING_TEXT = """\
The nurse checked the patient's blood pressure twice before the morning round.
A forty-five year old man arrived with chest pain radiating to his left arm.
She reported that the pain started three days ago and was getting worse.
The doctor ordered an electrocardiogram and a troponin test right away.
Pain scores were recorded every four hours on a scale from zero to ten.
The medication was given by mouth with a glass of water after breakfast.
His daughter asked whether the new treatment would have any side effects.
After surgery, the patient needed help walking to the window and back.
Clinicians should treat similar patients the same way, whatever their background.
Numbers like 120/80, 37.5 degrees and 98 percent oxygen appear in notes.
"""

TEXTS = [
    "The patient reported chest pain.",
    "  two leading spaces and   inner runs  ",
    "unseen words: zygomatic xylophone quixotic",
    "Café naïve 日本語 😀 — bytes fall back",
    "Pain 8/10 at 14:30, BP 120/80.",
    "line one\nline two\ttabbed",
    "",
]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import sentencepiece as spm

    directory = tmp_path_factory.mktemp("spm")
    corpus = directory / "corpus.txt"
    corpus.write_text(TRAINING_TEXT * 20, encoding="utf-8")
    prefix = directory / "tiny"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=400,
        byte_fallback=True,
        character_coverage=1.0,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    return pathlib.Path(str(prefix) + ".model")


@pytest.fixture(scope="module")
def reference(model_file):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(model_file))


@pytest.fixture(scope="module")
def from_file(model_file):
    return core.SentencePieceTokenizer.from_model_file(model_file, add_bos=True)


@pytest.fixture(scope="module")
def from_vocab(reference):
    size = reference.get_piece_size()
    types = []
    for i in range(size):
        if reference.is_unknown(i):
            types.append(2)
        elif reference.is_control(i):
            types.append(3)
        elif reference.is_byte(i):
            types.append(6)
        else:
            types.append(1)
    return core.SentencePieceTokenizer.from_gguf_vocab(
        [reference.id_to_piece(i) for i in range(size)],
        [reference.get_score(i) for i in range(size)],
        types,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        add_bos=True,
    )


@pytest.mark.parametrize("text", TEXTS)
def test_ids_match_sentencepiece(text, reference, from_file, from_vocab):
    expected = reference.encode(text)
    assert from_file.encode(text) == expected
    assert from_vocab.encode(text) == expected
    assert from_file.encode(text, add_special=True) == [1] + expected


@pytest.mark.parametrize("text", TEXTS)
def test_decode_round_trip(text, reference, from_file, from_vocab):
    ids = reference.encode(text)
    assert from_file.decode(ids) == reference.decode(ids)
    assert from_vocab.decode(ids) == reference.decode(ids)
    assert from_file.decode(ids) == text


def test_special_tokens(from_file, from_vocab):
    for tokenizer in (from_file, from_vocab):
        assert tokenizer.bos_id == 1
        assert tokenizer.eos_id == 2
        assert tokenizer.unk_id == 0
        assert tokenizer.is_special(1)
        assert tokenizer.token_to_id("</s>") == 2
        assert tokenizer.token_to_id("no-such-piece") is None
        ids = tokenizer.encode("<s>hello</s>", parse_special=True)
        assert ids[0] == 1 and ids[-1] == 2
        assert tokenizer.decode(ids, skip_special=True) == tokenizer.decode(ids[1:-1])


def test_errors(from_file, tmp_path):
    with pytest.raises(core.DataError, match="token id 400 is out of range"):
        from_file.decode([400])
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(core.FormatError, match="not a valid SentencePiece model"):
        core.SentencePieceTokenizer.from_model_file(bad)
    with pytest.raises(core.FormatError, match="token_type has 1 entries but tokenizer.ggml.tokens has 2"):
        core.SentencePieceTokenizer.from_gguf_vocab(["<unk>", "a"], [0.0, 0.0], [2])
