"""CausalLM against transformers on SmolLM2-135M-Instruct (GGUF, Q4_1 + Q8_0).

Both sides dequantize the same file to float32; tokens must be identical and
last-position logits must agree within 1e-3 absolute.
"""

from __future__ import annotations

import pytest
import torch

LOGIT_TOLERANCE = 1e-3


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def reference_chat_ids(tokenizer, text: str) -> list[int]:
    encoded = tokenizer.apply_chat_template(chat(text), add_generation_prompt=True, tokenize=True)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def medfair_chat_ids(model, text: str) -> list[int]:
    return model.encode_prompt(model.apply_chat_template(chat(text), True))


def test_chat_prompt_text_matches(smollm2, hf_reference, texts):
    _, tokenizer = hf_reference
    for text in texts:
        expected = tokenizer.apply_chat_template(chat(text), add_generation_prompt=True, tokenize=False)
        assert smollm2.apply_chat_template(chat(text), True) == expected


def test_chat_token_ids_match(smollm2, hf_reference, texts):
    _, tokenizer = hf_reference
    mismatches = [text[:60] for text in texts if medfair_chat_ids(smollm2, text) != reference_chat_ids(tokenizer, text)]
    assert mismatches == [], f"{len(mismatches)} of {len(texts)} prompts tokenize differently"


def test_last_logits_match(smollm2, hf_reference, texts):
    model, tokenizer = hf_reference
    prompts = texts[:: max(1, len(texts) // 24)][:24]
    assert len(prompts) >= 20
    for text in prompts:
        ids = torch.tensor([reference_chat_ids(tokenizer, text)])
        with torch.inference_mode():
            expected = model(ids).logits[0, -1]
        actual = smollm2.logits(ids)[0, -1]
        difference = (actual - expected).abs().max().item()
        assert difference < LOGIT_TOLERANCE, f"max |logit difference| {difference:.2e} on {text[:60]!r}"


def test_greedy_decoding_matches(smollm2, hf_reference, texts):
    model, tokenizer = hf_reference
    for text in texts[:5]:
        ids = reference_chat_ids(tokenizer, text)
        with torch.inference_mode():
            expected = model.generate(
                torch.tensor([ids]), max_new_tokens=32, do_sample=False, attention_mask=torch.ones(1, len(ids), dtype=torch.long)
            )[0, len(ids) :].tolist()
        actual = smollm2.generate_greedy(ids, 32)
        assert actual == expected[: len(actual)]
        assert len(actual) == len(expected)


def write_hf_folder(model, tokenizer, folder) -> None:
    """Write the dequantized weights as a Hugging Face folder.

    transformers refuses save_pretrained() on a GGUF-loaded model, so the
    folder is assembled from its state dict, config and tokenizer.
    """
    import json

    from safetensors.torch import save_file

    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(folder)


def test_safetensors_folder_matches(smollm2, hf_reference, texts, tmp_path_factory):
    import medfair

    model, tokenizer = hf_reference
    folder = tmp_path_factory.mktemp("smollm2_hf")
    write_hf_folder(model, tokenizer, folder)
    from_folder = medfair.CausalLM.load(str(folder))
    assert from_folder.config.n_layer == 30
    for text in texts[:6]:
        ids = reference_chat_ids(tokenizer, text)
        assert medfair_chat_ids(from_folder, text) == ids
        batch = torch.tensor([ids])
        with torch.inference_mode():
            expected = model(batch).logits[0, -1]
        assert (from_folder.logits(batch)[0, -1] - expected).abs().max().item() < LOGIT_TOLERANCE
    ids = reference_chat_ids(tokenizer, texts[0])
    assert from_folder.generate_greedy(ids, 16) == smollm2.generate_greedy(ids, 16)


def test_padded_batch_matches_single_rows(smollm2, hf_reference, texts):
    _, tokenizer = hf_reference
    rows = [reference_chat_ids(tokenizer, text) for text in texts[:3]]
    width = max(len(r) for r in rows)
    pad = 2
    for side in ("left", "right"):
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if side == "left":
                ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
            else:
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
        batched = smollm2.logits(ids, mask)
        for i, row in enumerate(rows):
            single = smollm2.logits(torch.tensor([row]))[0, -1]
            last = width - 1 if side == "left" else len(row) - 1
            difference = (batched[i, last] - single).abs().max().item()
            assert difference < 1e-4, f"{side} padding row {i}: max |difference| {difference:.2e}"


def test_bfloat16_close_to_float32(gguf_path, smollm2, hf_reference, texts):
    import medfair

    _, tokenizer = hf_reference
    bf16 = medfair.CausalLM.load(str(gguf_path), dtype="bfloat16")
    assert bf16.dtype == "bfloat16"
    ids = torch.tensor([reference_chat_ids(tokenizer, texts[0])])
    full = smollm2.logits(ids)[0, -1]
    half = bf16.logits(ids)[0, -1]
    assert half.dtype == torch.float32
    assert torch.argmax(half) == torch.argmax(full)
    assert torch.nn.functional.cosine_similarity(half, full, dim=0).item() > 0.99


def test_logits_is_a_torch_tensor_without_copy(smollm2):
    ids = torch.tensor([[1, 4093, 198]])
    out = smollm2.logits(ids)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, 3, smollm2.config.vocab_size)
    assert out.is_contiguous()


def test_default_load_finds_packaged_model(gguf_path):
    import medfair

    model = medfair.CausalLM.load()
    assert model.source == gguf_path
    assert model.config.n_head == 9
    assert model.config.n_head_kv == 3


@pytest.mark.parametrize("bad_ids", [[[-1, 2]], [[49152]]])
def test_out_of_vocabulary_ids_rejected(smollm2, bad_ids):
    import medfair

    with pytest.raises(medfair.ConfigError, match="outside the vocabulary"):
        smollm2.logits(torch.tensor(bad_ids))


def test_state_dict_shares_model_memory(smollm2):
    first = smollm2.state_dict()
    second = smollm2.state_dict()
    name = "model.layers.0.self_attn.k_proj.weight"
    assert first[name].shape == (192, 576)
    assert first[name].data_ptr() == second[name].data_ptr()
    assert "lm_head.weight" not in first  # tied to the token embedding
