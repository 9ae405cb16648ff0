"""SentenceEncoder on BERT folders other than all-MiniLM-L6-v2.

Each test saves a tiny random transformers BERT (hidden size 32, 2 layers)
with save_pretrained and adds the MiniLM tokenizer files. Where the layout has
them, it also writes the sentence-transformers module files. medfair and
sentence-transformers then load the same folder and must agree.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
import torch

import medfair
from medfair._defaults import default_encoder_path

MIN_COSINE = 0.9999
# Exact and tanh-approximated GELU differ by about 2e-4 on MiniLM, so this
# bound also catches a wrong activation that cosine alone would pass.
MAX_ABS_DIFFERENCE = 1e-5
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

SENTENCES = [
    "The patient is a 58-year-old woman with sudden shortness of breath.",
    "Pain score 8/10; she asks for something stronger than ibuprofen.",
    "No history of substance use.",
    "He was discharged after two days and returns with a fever of 39.2 °C.",
    "Ok",
    "",
]


def tiny_bert_config():
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_act="gelu",
    )


def randomize(model) -> None:
    """Spread all weights (LayerNorm included) so that a wrong step shows in the output."""
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)


def save_folder(model, folder: pathlib.Path) -> pathlib.Path:
    model.save_pretrained(folder, safe_serialization=True)
    minilm = pathlib.Path(default_encoder_path())
    for name in TOKENIZER_FILES:
        shutil.copy(minilm / name, folder / name)
    return folder


def write_cls_modules(folder: pathlib.Path, max_seq_length: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    pooling = {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": True,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling").mkdir()
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )


def compare_with_reference(folder: pathlib.Path, sentences: list[str]) -> tuple[object, object]:
    from sentence_transformers import SentenceTransformer

    encoder = medfair.SentenceEncoder.load(folder)
    reference = SentenceTransformer(str(folder), device="cpu")
    assert encoder.dimension == reference.get_embedding_dimension()
    assert encoder.max_length == reference.max_seq_length

    for sentence in sentences:
        features = reference.tokenize([sentence])
        expected_ids = features["input_ids"][0][features["attention_mask"][0].bool()].tolist()
        assert encoder.tokenize(sentence) == expected_ids, sentence[:60]

    actual = encoder.encode(sentences)
    expected = reference.encode(sentences, convert_to_tensor=True)
    cosines = torch.nn.functional.cosine_similarity(actual.double(), expected.double(), dim=1)
    max_abs = (actual - expected).abs().max().item()
    print(f"{folder.name}: min cosine {cosines.min().item():.8f}, max |difference| {max_abs:.2e}")
    assert cosines.min().item() >= MIN_COSINE
    assert max_abs < MAX_ABS_DIFFERENCE
    return encoder, reference


def test_cls_pooling_without_normalize(tmp_path):
    from transformers import BertModel

    model = BertModel(tiny_bert_config()).eval()
    randomize(model)
    folder = save_folder(model, tmp_path / "tiny-cls")
    write_cls_modules(folder, max_seq_length=64)

    long_text = " ".join(SENTENCES * 10)
    encoder, _ = compare_with_reference(folder, SENTENCES + [long_text])
    assert encoder.pooling_modes == ["cls"]
    assert not encoder.normalizes
    assert encoder.max_length == 64
    assert len(encoder.tokenize(long_text)) == 64

    # The encoder's hidden states are BertModel's last_hidden_state.
    ids = torch.tensor([encoder.tokenize(SENTENCES[0])])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (encoder.token_embeddings(ids, mask) - expected).abs().max().item() < 1e-4

    norms = encoder.encode(SENTENCES[:3]).norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms), atol=1e-3)


def test_plain_masked_lm_folder(tmp_path):
    """A BertForMaskedLM folder without sentence-transformers files: tensor
    names carry the "bert." prefix and both sides fall back to mean pooling."""
    from safetensors import safe_open
    from transformers import BertForMaskedLM

    model = BertForMaskedLM(tiny_bert_config()).eval()
    randomize(model)
    folder = save_folder(model, tmp_path / "tiny-mlm")
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert "bert.embeddings.word_embeddings.weight" in weights.keys()

    encoder, _ = compare_with_reference(folder, SENTENCES)
    assert encoder.pooling_modes == ["mean"]
    assert not encoder.normalizes
    assert encoder.max_length == 128


def test_unsupported_pooling_mode_raises(tmp_path):
    from transformers import BertModel

    folder = save_folder(BertModel(tiny_bert_config()), tmp_path / "tiny-bad-pooling")
    write_cls_modules(folder, max_seq_length=64)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "median"}))
    with pytest.raises(medfair.ModelError, match='pooling_mode "median" is not supported'):
        medfair.SentenceEncoder.load(folder)
