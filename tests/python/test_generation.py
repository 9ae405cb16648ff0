"""medfair.generate against transformers' greedy generate on the same SmolLM2
GGUF weights, and seeded sampling through the Python binding."""

from __future__ import annotations

import pytest
import torch

import medfair

# Questions written for these tests.
QUESTIONS = [
    "What is the normal resting heart rate of an adult?",
    "List two signs of dehydration.",
    "A patient has a fever of 39 degrees Celsius and a stiff neck. What should be ruled out first?",
]
MAX_NEW_TOKENS = 20


def chat_ids(model, text: str) -> list[int]:
    return model.encode_prompt(model.apply_chat_template([{"role": "user", "content": text}]))


@pytest.fixture(scope="module")
def prompts(smollm2):
    return [chat_ids(smollm2, q) for q in QUESTIONS]


def test_greedy_matches_transformers(smollm2, hf_reference, prompts):
    model, _ = hf_reference
    ours = medfair.generate(smollm2, prompts, medfair.SamplingOptions(max_new_tokens=MAX_NEW_TOKENS))
    eos = set(medfair.end_of_sequence_ids(smollm2))
    for ids, generated in zip(prompts, ours):
        with torch.no_grad():
            output = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                max_new_tokens=MAX_NEW_TOKENS,
                eos_token_id=sorted(eos),
                pad_token_id=0,
            )
        expected = output[0, len(ids):].tolist()
        assert generated.token_ids == expected


def test_greedy_batch_equals_single(smollm2, prompts):
    options = medfair.SamplingOptions(max_new_tokens=12)
    batched = medfair.generate(smollm2, prompts, options)
    for ids, row in zip(prompts, batched):
        single = medfair.generate(smollm2, [ids], options)[0]
        assert single.token_ids == row.token_ids
        assert single.text == row.text


def test_sampling_seeds_reproduce(smollm2, prompts):
    options = medfair.SamplingOptions(max_new_tokens=12, temperature=0.9, top_p=0.95)
    seeds = [5, 6, 7]
    first = medfair.generate(smollm2, prompts, options, seeds)
    again = medfair.generate(smollm2, prompts[::-1], options, seeds[::-1])[::-1]
    assert [g.token_ids for g in first] == [g.token_ids for g in again]
    other = medfair.generate(smollm2, prompts, options, [8, 9, 10])
    assert [g.token_ids for g in first] != [g.token_ids for g in other]


def test_generation_fields(smollm2, prompts):
    generation = medfair.generate(smollm2, prompts[:1], medfair.SamplingOptions(max_new_tokens=4))[0]
    assert generation.finish_reason == "length"
    assert len(generation.token_ids) == 4
    assert generation.text == smollm2.tokenizer.decode(generation.token_ids)


def test_generate_rejects_bad_options(smollm2, prompts):
    with pytest.raises(medfair.ConfigError, match="top_p must be in"):
        medfair.generate(smollm2, prompts[:1], medfair.SamplingOptions(top_p=1.5))
    with pytest.raises(TypeError, match="unexpected keyword argument 'temprature'"):
        medfair.SamplingOptions(temprature=1.0)
