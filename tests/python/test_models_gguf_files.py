"""GGUF files that the tests write themselves with gguf-py: a small random
Llama and Qwen2 converted the way llama.cpp's converter does (Q/K rows
permuted for Llama), compared with transformers, and broken files that must
raise medfair errors naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

TOLERANCE = 1e-4


def smollm2_vocab(gguf_path):
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))

    def field(name):
        return reader.fields[name].contents()

    return {
        "tokens": field("tokenizer.ggml.tokens"),
        "merges": field("tokenizer.ggml.merges"),
        "token_types": field("tokenizer.ggml.token_type"),
        "chat_template": field("tokenizer.chat_template"),
    }


def permute_like_llama_cpp(weight: np.ndarray, n_head: int) -> np.ndarray:
    """The row order llama.cpp's converter writes for Q and K."""
    rows = weight.shape[0]
    return weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(path, model, vocab, arch="llama", drop=(), reshape=None, architecture_name=None):
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(str(path), architecture_name or arch)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"] if hasattr(config, "rope_parameters") and config.rope_parameters else config.rope_theta)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(vocab["tokens"])
    writer.add_token_merges(vocab["merges"])
    writer.add_token_types(vocab["token_types"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template(vocab["chat_template"])

    n_head, n_head_kv = config.num_attention_heads, config.num_key_value_heads
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_proj.bias": "attn_q.bias",
        "self_attn.k_proj.bias": "attn_k.bias",
        "self_attn.v_proj.bias": "attn_v.bias",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for i in range(config.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}"] = f"blk.{i}.{gg}"
    for hf_name, tensor in model.state_dict().items():
        name = names[hf_name]
        if name in drop:
            continue
        data = tensor.detach().numpy().astype(np.float32)
        if arch == "llama" and name.endswith("attn_q.weight"):
            data = permute_like_llama_cpp(data, n_head)
        if arch == "llama" and name.endswith("attn_k.weight"):
            data = permute_like_llama_cpp(data, n_head_kv)
        if reshape and name == reshape:
            data = data[:-1]
        writer.add_tensor(name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def small_model(kind):
    import transformers

    torch.manual_seed(0)
    common = dict(
        vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rms_norm_eps=1e-5, tie_word_embeddings=False,
    )
    if kind == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.mul_(4.0)
            else:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return model.eval()


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_written_gguf_matches_transformers(arch, gguf_path, tmp_path):
    import medfair

    model = small_model(arch)
    path = tmp_path / f"{arch}.gguf"
    write_gguf(path, model, smollm2_vocab(gguf_path), arch=arch)
    loaded = medfair.CausalLM.load(str(path))
    assert loaded.config.architecture == arch
    assert loaded.config.attention_bias == (arch == "qwen2")
    assert not loaded.config.tie_word_embeddings

    ids = torch.randint(3, 49152, (1, 64), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = model(ids).logits
    difference = (loaded.logits(ids) - expected).abs().max().item()
    assert difference < TOLERANCE, f"{arch}: max |logit difference| {difference:.2e}"


def test_unknown_architecture_rejected(gguf_path, tmp_path):
    import medfair

    path = tmp_path / "gpt2.gguf"
    write_gguf(path, small_model("llama"), smollm2_vocab(gguf_path), architecture_name="gpt2")
    with pytest.raises(medfair.ModelError, match=r'general.architecture is "gpt2".*supported: llama, mistral, qwen2'):
        medfair.CausalLM.load(str(path))


def test_missing_tensor_named(gguf_path, tmp_path):
    import medfair

    path = tmp_path / "missing.gguf"
    write_gguf(path, small_model("llama"), smollm2_vocab(gguf_path), drop=("blk.1.ffn_up.weight",))
    with pytest.raises(medfair.ModelError, match="tensor blk.1.ffn_up.weight is missing"):
        medfair.CausalLM.load(str(path))


def test_shape_mismatch_named(gguf_path, tmp_path):
    import medfair

    path = tmp_path / "shape.gguf"
    write_gguf(path, small_model("llama"), smollm2_vocab(gguf_path), reshape="blk.0.attn_v.weight")
    with pytest.raises(medfair.ModelError, match=r"blk.0.attn_v.weight has shape \[31, 64\] but the model config requires \[32, 64\]"):
        medfair.CausalLM.load(str(path))
