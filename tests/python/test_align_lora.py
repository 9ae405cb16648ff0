"""LoRA adapters against Hugging Face PEFT on a small random Llama.

medfair attaches adapters with random B matrices, because PEFT's zero start
would hide errors in the update. It writes a PEFT folder, PEFT loads that
folder onto the transformers model, and the logits must agree. The reverse
direction, the merged export and the error cases are checked too.
"""

from __future__ import annotations

import json

import pytest
import torch
from align_support import randomize_b, small_llama

TOLERANCE = 1e-3
ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def model_dir(hf_reference, tmp_path_factory):
    _, tokenizer = hf_reference
    folder = tmp_path_factory.mktemp("small_llama")
    small_llama().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def peft_model(model_dir, adapter_dir):
    import transformers
    from peft import PeftModel

    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(base, adapter_dir).eval()


def sample_ids():
    torch.manual_seed(2)
    ids = torch.randint(3, 49152, (2, 40))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0  # right padding on the second row
    return ids, mask


def max_difference(actual, expected, mask):
    real = mask.bool()
    return (actual[real] - expected[real]).abs().max().item()


@pytest.mark.parametrize("use_rslora", [False, True])
def test_lora_export_matches_peft(model_dir, tmp_path, use_rslora):
    import medfair

    model = medfair.CausalLM.load(str(model_dir))
    model.add_lora(medfair.LoraOptions(r=4, alpha=8.0, use_rslora=use_rslora, target_modules=ALL_TARGETS, seed=3))
    randomize_b(model)
    model.save_adapter(tmp_path / "adapter")

    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert sorted(config["target_modules"]) == sorted(ALL_TARGETS)

    reference = peft_model(model_dir, tmp_path / "adapter")
    ids, mask = sample_ids()
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask).logits
    actual = model.logits(ids, mask)
    assert max_difference(actual, expected, mask) < TOLERANCE

    # Disabling the adapters gives the base model, as PEFT's disable_adapter().
    model.adapters_enabled = False
    with torch.inference_mode(), reference.disable_adapter():
        base_expected = reference(input_ids=ids, attention_mask=mask).logits
    assert max_difference(model.logits(ids, mask), base_expected, mask) < TOLERANCE
    assert max_difference(base_expected, expected, mask) > 0.1


def test_lora_init_leaves_output(model_dir):
    import medfair

    model = medfair.CausalLM.load(str(model_dir))
    ids, mask = sample_ids()
    before = model.logits(ids, mask)
    model.add_lora(medfair.LoraOptions(r=8, alpha=16.0, target_modules=["q_proj", "v_proj"]))
    after = model.logits(ids, mask)
    assert torch.equal(before, after)
    tensors = model.adapter_state_dict()
    a = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    b = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
    assert tuple(a.shape) == (8, 64)
    assert tuple(b.shape) == (64, 8)
    assert torch.count_nonzero(b).item() == 0
    # kaiming_uniform_(a=sqrt(5)) draws from U(-1/sqrt(in), 1/sqrt(in)).
    assert a.abs().max().item() <= 1 / 64**0.5
    assert a.abs().max().item() > 0.8 / 64**0.5
    assert len(tensors) == 2 * 2 * 2


def test_lora_loads_peft_adapter(model_dir, tmp_path):
    import medfair
    import transformers
    from peft import LoraConfig, get_peft_model

    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=6, lora_alpha=12, lora_dropout=0.0, target_modules=["k_proj", "o_proj", "down_proj"],
                        task_type="CAUSAL_LM")
    reference = get_peft_model(base, config)
    torch.manual_seed(5)
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn_like(parameter) * 0.5)
    reference.save_pretrained(tmp_path / "peft")
    reference.eval()

    model = medfair.CausalLM.load(str(model_dir), adapter=str(tmp_path / "peft"))
    assert model.has_lora
    assert model.lora_options.target_modules == ["k_proj", "o_proj", "down_proj"]
    ids, mask = sample_ids()
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask).logits
    assert max_difference(model.logits(ids, mask), expected, mask) < TOLERANCE


def test_lora_merged_export_matches(model_dir, tmp_path):
    import medfair
    import transformers

    model = medfair.CausalLM.load(str(model_dir))
    model.add_lora(medfair.LoraOptions(r=4, alpha=8.0, target_modules=ALL_TARGETS))
    randomize_b(model)
    model.save_merged(tmp_path / "merged")

    merged = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32).eval()
    ids, mask = sample_ids()
    with torch.inference_mode():
        expected = merged(input_ids=ids, attention_mask=mask).logits
    assert max_difference(model.logits(ids, mask), expected, mask) < TOLERANCE
    reloaded = medfair.CausalLM.load(str(tmp_path / "merged"))
    assert not reloaded.has_lora
    assert max_difference(reloaded.logits(ids, mask), expected, mask) < TOLERANCE


def test_lora_bfloat16_base(model_dir, tmp_path):
    import medfair

    model = medfair.CausalLM.load(str(model_dir), dtype="bfloat16")
    model.add_lora(medfair.LoraOptions(r=4, alpha=8.0, target_modules=ALL_TARGETS))
    randomize_b(model)
    assert all(t.dtype == torch.float32 for t in model.adapter_state_dict().values())
    assert model.state_dict()["model.layers.0.self_attn.q_proj.weight"].dtype == torch.bfloat16
    model.save_adapter(tmp_path / "adapter")
    full = medfair.CausalLM.load(str(model_dir), adapter=str(tmp_path / "adapter"))
    ids, mask = sample_ids()
    # bfloat16 weights round to 8 bits of mantissa, so only closeness is expected.
    difference = max_difference(model.logits(ids, mask), full.logits(ids, mask), mask)
    assert difference < 0.5


def test_lora_gradients_reach_adapters(model_dir):
    import medfair

    model = medfair.CausalLM.load(str(model_dir))
    model.add_lora(medfair.LoraOptions(r=4, alpha=8.0, target_modules=["q_proj"]))
    ids, mask = sample_ids()
    model.output_logits(model.hidden_states(ids, mask)).sum().backward()
    tensors = model.adapter_state_dict()
    a = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    b = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
    assert b.grad is not None and b.grad.abs().sum().item() > 0
    # With B = 0 the gradient of A is zero, as in PEFT.
    assert a.grad is not None and a.grad.abs().sum().item() == 0
    assert not model.state_dict()["model.layers.0.self_attn.q_proj.weight"].requires_grad


def test_lora_adapter_errors(model_dir, tmp_path):
    import medfair

    model = medfair.CausalLM.load(str(model_dir))
    with pytest.raises(medfair.ConfigError, match="no LoRA adapters"):
        model.save_adapter(tmp_path / "none")
    with pytest.raises(medfair.ConfigError, match="choose from"):
        model.add_lora(medfair.LoraOptions(target_modules=["lm_head"]))
    with pytest.raises(medfair.IOError, match="adapter_config.json is missing"):
        model.load_adapter(tmp_path)

    model.add_lora(medfair.LoraOptions(r=4, target_modules=["q_proj"]))
    with pytest.raises(medfair.ConfigError, match="already has LoRA adapters"):
        model.add_lora(medfair.LoraOptions(r=4, target_modules=["q_proj"]))
    model.save_adapter(tmp_path / "adapter")
    config_path = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())

    config["r"] = 5
    config_path.write_text(json.dumps(config))
    with pytest.raises(medfair.ModelError, match=r"lora_A.weight has shape \[4, 64\]"):
        model.load_adapter(tmp_path / "adapter")

    config["r"] = 4
    config["use_dora"] = True
    config_path.write_text(json.dumps(config))
    with pytest.raises(medfair.ConfigError, match="DoRA"):
        model.load_adapter(tmp_path / "adapter")

    config["use_dora"] = False
    config["target_modules"] = ["q_proj", "v_proj"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(medfair.FormatError, match="v_proj.lora_A.weight is missing"):
        model.load_adapter(tmp_path / "adapter")
    # A failed load leaves the attached adapter in place.
    assert model.lora_options.target_modules == ["q_proj"]
