"""CausalLM against transformers on small random models of each family.

Each test builds a randomly initialised transformers model (Llama 3 with
rope scaling, Qwen2 with attention biases, Mistral, a Llama with an untied
output head), saves it as a Hugging Face folder with SmolLM2's tokenizer, loads
the folder with medfair and compares logits over a padded batch.
"""

from __future__ import annotations

import pytest
import torch

TOLERANCE = 1e-4


def small_config(config_class, **overrides):
    fields = dict(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )
    fields.update(overrides)
    return config_class(**fields)


def build(kind: str):
    import transformers

    torch.manual_seed(0)
    if kind == "llama3_scaled":
        config = small_config(
            transformers.LlamaConfig,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        )
        return transformers.LlamaForCausalLM(config)
    if kind == "qwen2":
        return transformers.Qwen2ForCausalLM(small_config(transformers.Qwen2Config))
    if kind == "mistral":
        return transformers.MistralForCausalLM(small_config(transformers.MistralConfig, sliding_window=None))
    if kind == "llama_tied":
        return transformers.LlamaForCausalLM(small_config(transformers.LlamaConfig, tie_word_embeddings=True))
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["llama3_scaled", "qwen2", "mistral", "llama_tied"])
def test_family_logits_match(kind, hf_reference, tmp_path):
    import medfair

    _, tokenizer = hf_reference
    model = build(kind).eval()
    # Scale the random weights up so attention patterns, and so positions, matter.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.mul_(4.0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    loaded = medfair.CausalLM.load(str(tmp_path))
    assert loaded.config.architecture == model.config.model_type
    if kind == "llama3_scaled":
        assert loaded.config.rope_scaling.type == "llama3"
    if kind == "qwen2":
        assert loaded.config.attention_bias

    torch.manual_seed(1)
    ids = torch.randint(3, 49152, (2, 150))
    mask = torch.ones_like(ids)
    mask[1, :40] = 0  # left padding on the second row
    # medfair numbers each row's real tokens from 0; transformers needs the same
    # positions spelled out, as its generate() does for padded batches.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    actual = loaded.logits(ids, mask)
    real = mask.bool()
    difference = (actual[real] - expected[real]).abs().max().item()
    assert difference < TOLERANCE, f"{kind}: max |logit difference| {difference:.2e}"
