"""SmolLM2-135M-Instruct's GGUF tokenizer and chat template against transformers.

References: transformers' tokenizer for the GGUF file (AutoTokenizer with
gguf_file=) and the tokenizer.json route, i.e. the same vocabulary in the
`tokenizers` library with SmolLM2's own pre-tokenizer (Digits with
individual_digits, then ByteLevel). transformers' GGUF conversion drops the
Digits step, so the two references differ on whitespace runs before a digit;
medfair follows the tokenizer.json route and test_gguf_conversion_drops_digit_split
shows the difference.
"""

import json

import pytest

import medfair._core as core
from text_support import read_gguf_tokenizer_fields, shared_strings, smollm2_gguf

EDGE_CASES = [
    "",
    " ",
    "Hello, world!",
    "naïve café, résumé, Zürich, São Paulo",
    "日本語のテキストと中文文本 및 한국어",
    "emoji 😀🎉👩‍⚕️ and flags 🇫🇷",
    "numbers 1234567890123456789 and 3.14159, -42, 1e-10",
    "a  1 b   22 c    333",
    "multiple   spaces    here",
    "line one\nline two\n\n\nline five",
    "tabs\tand\t\ttabs",
    "\r\nwindows line end\r\n",
    "I'm sure they'll say we've done what you'd've done, isn't it?",
    "SHOUTING DON'T WON'T",
    "<|im_start|>user\nHi<|im_end|>",
    "text with <|im_end|> inside and <|endoftext|> too",
    "almost special <|im_start and im_end|>",
    "trailing spaces   ",
    "   leading spaces",
    "x" * 300,
    "mg/kg q4h PRN; BP 120/80 mmHg; SpO2 98%",
    "non-breaking\u00a0space and zero\u200bwidth",
    "combining e\u0301 vs é",
]


@pytest.fixture(scope="module")
def gguf_fields():
    return read_gguf_tokenizer_fields(smollm2_gguf())


@pytest.fixture(scope="module")
def medfair_tokenizer(gguf_fields):
    f = gguf_fields
    return core.BPETokenizer.from_gguf_vocab(
        f["tokenizer.ggml.tokens"],
        f["tokenizer.ggml.merges"],
        f["tokenizer.ggml.token_type"],
        pre=f["tokenizer.ggml.pre"],
        bos_id=f["tokenizer.ggml.bos_token_id"],
        eos_id=f["tokenizer.ggml.eos_token_id"],
        unk_id=f["tokenizer.ggml.unknown_token_id"],
        pad_id=f["tokenizer.ggml.padding_token_id"],
        add_bos=f["tokenizer.ggml.add_bos_token"],
        origin=str(smollm2_gguf()),
    )


@pytest.fixture(scope="module")
def hf_gguf_tokenizer():
    from transformers import AutoTokenizer

    path = smollm2_gguf()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="module")
def hf_json_tokenizer(hf_gguf_tokenizer):
    """The GGUF vocabulary with the pre-tokenizer of SmolLM2's tokenizer.json."""
    import tokenizers

    spec = json.loads(hf_gguf_tokenizer.backend_tokenizer.to_str())
    spec["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ],
    }
    return tokenizers.Tokenizer.from_str(json.dumps(spec))


@pytest.fixture(scope="module")
def vignettes():
    return shared_strings()


def check_ids(text, medfair_tokenizer, hf_gguf_tokenizer, hf_json_tokenizer):
    ours = medfair_tokenizer.encode(text)
    via_json = hf_json_tokenizer.encode(text, add_special_tokens=False).ids
    via_gguf = hf_gguf_tokenizer.encode(text, add_special_tokens=False)
    assert ours == via_json, f"ids differ from the tokenizer.json route for {text!r}"
    if via_gguf == via_json:
        assert ours == via_gguf, f"ids differ from transformers' GGUF tokenizer for {text!r}"


def test_vignette_chat_render(gguf_fields, hf_gguf_tokenizer, vignettes):
    template = gguf_fields["tokenizer.chat_template"]
    assert hf_gguf_tokenizer.chat_template == template
    for text in vignettes:
        expected = hf_gguf_tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        assert core.render_chat(template, [("user", text)]) == expected


def test_vignette_chat_ids(gguf_fields, medfair_tokenizer, hf_gguf_tokenizer, hf_json_tokenizer, vignettes):
    template = gguf_fields["tokenizer.chat_template"]
    for text in vignettes:
        prompt = core.render_chat(template, [("user", text)])
        check_ids(prompt, medfair_tokenizer, hf_gguf_tokenizer, hf_json_tokenizer)
        expected = hf_gguf_tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=True, add_generation_prompt=True
        )
        if isinstance(expected, dict) or hasattr(expected, "keys"):
            expected = expected["input_ids"]
        assert medfair_tokenizer.encode(prompt, add_special=True) == list(expected)


def test_vignette_raw_ids(medfair_tokenizer, hf_gguf_tokenizer, hf_json_tokenizer, vignettes):
    for text in vignettes:
        check_ids(text, medfair_tokenizer, hf_gguf_tokenizer, hf_json_tokenizer)


def test_vignette_decode_round_trip(medfair_tokenizer, hf_gguf_tokenizer, vignettes):
    for text in vignettes:
        ids = medfair_tokenizer.encode(text)
        assert medfair_tokenizer.decode(ids) == text
        assert medfair_tokenizer.decode(ids) == hf_gguf_tokenizer.decode(ids)


def test_vignettes_hit_no_conversion_difference(hf_gguf_tokenizer, hf_json_tokenizer, vignettes):
    # On the real data both references agree, so medfair equals transformers' GGUF tokenizer on every string.
    for text in vignettes:
        assert hf_gguf_tokenizer.encode(text, add_special_tokens=False) == hf_json_tokenizer.encode(
            text, add_special_tokens=False
        ).ids


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_case_ids(text, medfair_tokenizer, hf_gguf_tokenizer, hf_json_tokenizer):
    check_ids(text, medfair_tokenizer, hf_gguf_tokenizer, hf_json_tokenizer)
    ids = medfair_tokenizer.encode(text)
    assert medfair_tokenizer.decode(ids) == text
    assert medfair_tokenizer.decode(ids) == hf_json_tokenizer.decode(ids, skip_special_tokens=False)


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_case_skip_special(text, medfair_tokenizer, hf_json_tokenizer):
    ids = medfair_tokenizer.encode(text)
    assert medfair_tokenizer.decode(ids, skip_special=True) == hf_json_tokenizer.decode(ids, skip_special_tokens=True)


def test_special_tokens_unparsed(medfair_tokenizer, hf_json_tokenizer):
    text = "say <|im_start|> here"
    assert 1 in medfair_tokenizer.encode(text)
    plain = medfair_tokenizer.encode(text, parse_special=False)
    assert 1 not in plain
    # tokenizers' encode with split_special_tokens=True is the reference for plain-text handling.
    import tokenizers  # noqa: F401

    hf_json_tokenizer.encode_special_tokens = True
    try:
        assert plain == hf_json_tokenizer.encode(text, add_special_tokens=False).ids
    finally:
        hf_json_tokenizer.encode_special_tokens = False


def test_gguf_conversion_drops_digit_split(medfair_tokenizer, hf_gguf_tokenizer, hf_json_tokenizer):
    # Two spaces before a digit: SmolLM2's Digits step leaves "  " as one
    # pre-token ("ĠĠ"), while transformers' GGUF conversion (ByteLevel only)
    # splits it into " " and " 1" and so returns two "Ġ" tokens.
    text = "a  1"
    ours = medfair_tokenizer.encode(text)
    assert ours == hf_json_tokenizer.encode(text, add_special_tokens=False).ids
    assert hf_gguf_tokenizer.encode(text, add_special_tokens=False) != ours
    assert [medfair_tokenizer.id_to_token(i) for i in ours] == ["a", "ĠĠ", "1"]


def test_special_ids(medfair_tokenizer, gguf_fields):
    assert medfair_tokenizer.vocab_size == len(gguf_fields["tokenizer.ggml.tokens"])
    assert medfair_tokenizer.bos_id == 1
    assert medfair_tokenizer.eos_id == 2
    assert medfair_tokenizer.token_to_id("<|im_start|>") == 1
    assert medfair_tokenizer.is_special(2)
    assert not medfair_tokenizer.is_special(100)


def test_decode_out_of_range(medfair_tokenizer):
    with pytest.raises(core.DataError, match="token id 49152 is out of range"):
        medfair_tokenizer.decode([5, 49152])
    with pytest.raises(core.DataError, match="token id -1 is out of range"):
        medfair_tokenizer.decode([-1])


def test_decode_partial_character(medfair_tokenizer):
    ids = medfair_tokenizer.encode("😀")
    assert len(ids) > 1
    assert medfair_tokenizer.decode(ids[:1]) == "\ufffd"


def test_invalid_utf8_rejected(medfair_tokenizer):
    # bytes reach C++ unchanged, so invalid UTF-8 can be passed from Python.
    with pytest.raises(core.DataError, match="not valid UTF-8 at byte offset 4"):
        medfair_tokenizer.encode(b"bad \x80 text")
    assert medfair_tokenizer.encode(b"caf\xc3\xa9") == medfair_tokenizer.encode("café")


def test_system_default_and_override(gguf_fields, hf_gguf_tokenizer):
    template = gguf_fields["tokenizer.chat_template"]
    family, default_system = core.chat_template_family(template)
    assert family == "chatml"
    assert default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    conversations = [
        [("system", "You are a triage nurse."), ("user", "Rate the pain.")],
        [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")],
    ]
    for messages in conversations:
        for add_generation_prompt in (True, False):
            expected = hf_gguf_tokenizer.apply_chat_template(
                [{"role": r, "content": c} for r, c in messages],
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
            )
            assert core.render_chat(template, messages, add_generation_prompt) == expected
