"""SentenceEncoder against sentence-transformers on all-MiniLM-L6-v2.

The sentences come from the shared vignette data (Q-Pain, nurse triage,
Healer), split at ". ". Token ids must equal the Hugging Face tokenizer's, and
each embedding must have cosine similarity >= 0.9999 with the reference.
"""

from __future__ import annotations

import csv
import os
import pathlib

import pytest
import torch

import medfair
from medfair._defaults import default_encoder_path

ROOT = pathlib.Path(__file__).resolve().parents[2]
MIN_COSINE = 0.9999
# Exact and tanh-approximated GELU differ by about 2e-4 on MiniLM, so this
# bound also catches a wrong activation that cosine alone would pass.
MAX_ABS_DIFFERENCE = 1e-5
SENTENCES_PER_SOURCE = 20


def shared_data_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("MEDFAIR_SHARED_DATA", ROOT.parent / "shared" / "data"))


def read_column(path: pathlib.Path, column: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        return [row[column] for row in csv.DictReader(stream) if row.get(column)]


def split_sentences(texts: list[str]) -> list[str]:
    sentences = []
    for text in texts:
        sentences += [part.strip() for part in text.split(". ") if part.strip()]
    return list(dict.fromkeys(sentences))


def spread(items: list[str], count: int) -> list[str]:
    """Return `count` items spaced evenly through `items` (all of them when fewer)."""
    if len(items) <= count:
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def vignette_sentences() -> list[str]:
    data = shared_data_dir()
    qpain, nurse, healer = [], [], []
    for path in sorted((data / "qpain").glob("*.csv")):
        for column in ("Vignette", "Question", "Explanation"):
            qpain += read_column(path, column)
    nurse = read_column(data / "nurse_bias" / "unconscious_bias_nurses_final.csv", "text")
    for path in sorted((data / "healer").glob("*.csv")):
        healer += read_column(path, "Case one liner")
    sources = [split_sentences(texts) for texts in (qpain, nurse, healer)]
    assert all(sources), f"expected Q-Pain, nurse and Healer CSVs under {data}"
    picked = [sentence for source in sources for sentence in spread(source, SENTENCES_PER_SOURCE)]
    return list(dict.fromkeys(picked))


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    found = vignette_sentences()
    assert len(found) >= 50, f"only {len(found)} distinct sentences in the vignette data"
    return found


@pytest.fixture(scope="module")
def encoder():
    return medfair.SentenceEncoder.load()


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(default_encoder_path(), device="cpu")


def reference_ids(reference, sentence: str) -> list[int]:
    features = reference.tokenize([sentence])
    return features["input_ids"][0][features["attention_mask"][0].bool()].tolist()


def report_difference(actual: torch.Tensor, expected: torch.Tensor, label: str) -> tuple[float, float]:
    cosines = torch.nn.functional.cosine_similarity(actual.double(), expected.double(), dim=1)
    max_abs = (actual - expected).abs().max().item()
    print(f"{label}: {len(actual)} sentences, min cosine {cosines.min().item():.8f}, max |difference| {max_abs:.2e}")
    return cosines.min().item(), max_abs


def test_encoder_layout_matches_reference(encoder, reference):
    assert encoder.dimension == 384
    assert encoder.dimension == reference.get_embedding_dimension()
    assert encoder.max_length == reference.max_seq_length == 256
    assert encoder.normalizes
    assert encoder.pooling_modes == ["mean"]
    assert encoder.source == pathlib.Path(default_encoder_path())


def test_token_ids_match_hf_tokenizer(encoder, reference, sentences):
    mismatches = [s[:60] for s in sentences if encoder.tokenize(s) != reference_ids(reference, s)]
    assert mismatches == [], f"{len(mismatches)} of {len(sentences)} sentences tokenize differently"

    tokenizer = reference.tokenizer
    for sentence in sentences:
        expected = tokenizer(sentence, truncation=True, max_length=256)["input_ids"]
        assert encoder.tokenize(sentence) == expected


def test_embeddings_match_sentence_transformers(encoder, reference, sentences):
    actual = encoder.encode(sentences)
    expected = reference.encode(sentences, convert_to_tensor=True, batch_size=32)
    assert actual.shape == (len(sentences), 384)
    assert actual.dtype == torch.float32
    min_cosine, max_abs = report_difference(actual, expected, "MiniLM vs sentence-transformers")
    assert min_cosine >= MIN_COSINE
    assert max_abs < MAX_ABS_DIFFERENCE


def test_embeddings_unit_norm(encoder, sentences):
    norms = encoder.encode(sentences).norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_batched_equals_one_by_one(encoder, sentences):
    batched = encoder.encode(sentences)
    single = torch.cat([encoder.encode([sentence]) for sentence in sentences])
    assert (batched - single).abs().max().item() < 1e-5


def test_batch_size_option(sentences):
    small = medfair.SentenceEncoder.load(batch_size=3)
    assert small.batch_size == 3
    default = medfair.SentenceEncoder.load()
    assert (small.encode(sentences) - default.encode(sentences)).abs().max().item() < 1e-5


def test_long_sentence_truncated_like_reference(encoder, reference, sentences):
    long_text = ". ".join(sentences)
    ids = encoder.tokenize(long_text)
    assert len(ids) == 256
    assert ids == reference_ids(reference, long_text)

    actual = encoder.encode([long_text, sentences[0]])
    expected = reference.encode([long_text, sentences[0]], convert_to_tensor=True)
    min_cosine, _ = report_difference(actual, expected, "truncated input")
    assert min_cosine >= MIN_COSINE


def test_encoded_tensor_is_ordinary(encoder):
    embeddings = encoder.encode(["The patient reports chest pain."])
    assert not embeddings.is_inference()
    embeddings.mul_(2.0)  # in-place use outside inference mode must work


def test_cosine_helpers(encoder, sentences):
    embeddings = encoder.encode(sentences[:5])
    expected = torch.nn.functional.cosine_similarity(embeddings[0], embeddings[1], dim=0).item()
    assert medfair.cosine(embeddings[0], embeddings[1]) == pytest.approx(expected, abs=1e-6)
    matrix = medfair.cosine_similarity_matrix(embeddings, embeddings)
    assert torch.allclose(matrix, embeddings @ embeddings.T, atol=1e-5)


def test_missing_folder_raises(tmp_path):
    with pytest.raises(medfair.IOError, match="not a directory"):
        medfair.SentenceEncoder.load(tmp_path / "absent")
    with pytest.raises(medfair.IOError, match="config.json"):
        medfair.SentenceEncoder.load(tmp_path)
