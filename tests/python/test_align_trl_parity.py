"""SimPO and DPO against TRL on the same batch and initial adapter weights.

A small random Llama (SmolLM2's tokenizer and chat template) gets LoRA
adapters with random B matrices from medfair; PEFT loads the same adapter
folder for TRL. Both sides tokenize the same conversational records from the
project's vignettes, and the per-pair rewards, the loss and every adapter
gradient must agree within 1e-4.
"""

from __future__ import annotations

import pytest
import torch
from align_support import randomize_b, small_llama, vignette_records

TOLERANCE = 1e-4
ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def setup(hf_reference, tmp_path_factory):
    import medfair

    _, tokenizer = hf_reference
    folder = tmp_path_factory.mktemp("parity")
    small_llama().save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    model = medfair.CausalLM.load(str(folder / "base"))
    model.add_lora(medfair.LoraOptions(r=4, alpha=8.0, target_modules=ALL_TARGETS, seed=7))
    randomize_b(model, scale=0.05)
    model.save_adapter(folder / "adapter")
    return folder, tokenizer


def peft_policy(folder):
    import transformers
    from peft import PeftModel

    base = transformers.AutoModelForCausalLM.from_pretrained(folder / "base", dtype=torch.float32)
    return PeftModel.from_pretrained(base, folder / "adapter", is_trainable=True)


def medfair_grads(model) -> dict[str, torch.Tensor]:
    return {name: tensor.grad.clone() for name, tensor in model.adapter_state_dict().items()}


def peft_grads(policy) -> dict[str, torch.Tensor]:
    grads = {}
    for name, parameter in policy.named_parameters():
        if "lora_" in name:
            grads[name.replace(".default.weight", ".weight")] = parameter.grad.clone()
    return grads


def compare_grads(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for name in ours:
        difference = (ours[name] - theirs[name]).abs().max().item()
        scale = theirs[name].abs().max().item()
        assert difference < TOLERANCE * max(1.0, scale), f"{name}: max |gradient difference| {difference:.2e}"


def trainer_options(method: str, max_length: int = 1024):
    import medfair

    options = medfair.TrainerOptions()
    options.method = method
    options.beta = 2.0 if method == "simpo" else 0.1
    options.gamma_beta_ratio = 0.5
    options.max_length = max_length
    return options


@pytest.mark.parametrize("truncate", [False, True])
def test_simpo_matches_cpo_trainer(setup, tmp_path, truncate):
    import datasets
    import medfair
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    folder, tokenizer = setup
    records = vignette_records(4)
    for record in records:
        record.pop("vignette")

    # medfair side. With `truncate`, max_length leaves 3 response tokens
    # after the longest prompt, so every response is cut.
    model = medfair.CausalLM.load(str(folder / "base"), adapter=str(folder / "adapter"))
    pairs = [medfair.render_preference(record, model) for record in records]
    max_length = 1024
    if truncate:
        untruncated = medfair.SimPOTrainer(model, trainer_options("simpo")).tokenize(pairs)
        max_length = max(t.chosen_prompt_length for t in untruncated) + 3
    trainer = medfair.SimPOTrainer(model, trainer_options("simpo", max_length))
    tokenized = trainer.tokenize(pairs)
    if truncate:
        assert all(t.response_truncated and not t.empty_response for t in tokenized)
    ours = trainer.compute_batch(pairs)

    # TRL side, with the same batch in the same order.
    policy = peft_policy(folder)
    config = CPOConfig(output_dir=str(tmp_path / "trl"), loss_type="simpo", cpo_alpha=0.0, beta=2.0,
                       simpo_gamma=1.0, max_length=max_length, report_to=[], remove_unused_columns=False,
                       per_device_train_batch_size=4, disable_dropout=True, bf16=False,
                       use_cpu=True, gradient_checkpointing=False)
    reference = CPOTrainer(model=policy, args=config, train_dataset=datasets.Dataset.from_list(records),
                           processing_class=tokenizer)
    rows = [reference.train_dataset[i] for i in range(len(records))]
    for i, row in enumerate(rows):
        assert row["chosen_input_ids"] == tokenized[i].chosen_ids
        assert row["rejected_input_ids"] == tokenized[i].rejected_ids
    batch = reference.data_collator(rows)
    policy.train()
    chosen_logps, rejected_logps = reference.concatenated_forward(policy, batch)[:2]
    losses, chosen_rewards, rejected_rewards = reference.cpo_loss(chosen_logps, rejected_logps)
    losses.mean().backward()

    assert torch.allclose(ours["chosen_logps"], chosen_logps.detach(), atol=TOLERANCE)
    assert torch.allclose(ours["rejected_logps"], rejected_logps.detach(), atol=TOLERANCE)
    assert torch.allclose(ours["chosen_rewards"], chosen_rewards, atol=TOLERANCE)
    assert torch.allclose(ours["rejected_rewards"], rejected_rewards, atol=TOLERANCE)
    assert abs(ours["loss"].item() - losses.mean().item()) < TOLERANCE
    compare_grads(medfair_grads(model), peft_grads(policy))


def test_simpo_loss_formula():
    import medfair

    chosen = torch.tensor([-1.0, -2.0, -0.5])
    rejected = torch.tensor([-1.5, -1.0, -0.5])
    result = medfair.simpo_loss(chosen, rejected, beta=2.0, gamma_beta_ratio=0.5, label_smoothing=0.1)
    z = 2.0 * (chosen - rejected - 0.5)
    expected = -torch.nn.functional.logsigmoid(z) * 0.9 - torch.nn.functional.logsigmoid(-z) * 0.1
    assert torch.allclose(result["losses"], expected)
    assert torch.allclose(result["chosen_rewards"], 2.0 * chosen)
    with pytest.raises(medfair.ConfigError, match="beta is 0"):
        medfair.simpo_loss(chosen, rejected, beta=0.0, gamma_beta_ratio=0.5)
    with pytest.raises(medfair.ConfigError, match="label_smoothing is 0.7"):
        medfair.simpo_loss(chosen, rejected, beta=1.0, gamma_beta_ratio=0.5, label_smoothing=0.7)


def test_dpo_matches_dpo_trainer(setup, tmp_path):
    """DPO loss, mean rewards and gradients against TRL's DPOTrainer.

    TRL 1.16's DPOTrainer tokenizes conversational data differently from its
    CPOTrainer (no extra EOS), and medfair tokenizes both methods the CPO
    way, so TRL's collator receives medfair's token ids here. The reference
    on both sides is the model with its adapter disabled.
    """
    import datasets
    import medfair
    from trl import DPOConfig, DPOTrainer

    folder, tokenizer = setup
    records = vignette_records(4)
    for record in records:
        record.pop("vignette")

    model = medfair.CausalLM.load(str(folder / "base"), adapter=str(folder / "adapter"))
    trainer = medfair.SimPOTrainer(model, trainer_options("dpo"))
    pairs = [medfair.render_preference(record, model) for record in records]
    tokenized = trainer.tokenize(pairs)
    ours = trainer.compute_batch(pairs)

    # TRL uses the base model as reference when it creates the adapter itself
    # (with an adapter passed in, it would copy it as the reference), so the
    # adapter weights are loaded after DPOTrainer wraps the base model.
    import transformers
    from peft import LoraConfig, set_peft_model_state_dict
    from safetensors.torch import load_file

    base = transformers.AutoModelForCausalLM.from_pretrained(folder / "base", dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=ALL_TARGETS, task_type="CAUSAL_LM")
    config = DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.1, loss_type=["sigmoid"], max_length=None,
                       report_to=[], remove_unused_columns=False, per_device_train_batch_size=4, bf16=False,
                       use_cpu=True, gradient_checkpointing=False, precompute_ref_log_probs=False)
    reference = DPOTrainer(model=base, args=config, train_dataset=datasets.Dataset.from_list(records),
                           processing_class=tokenizer, peft_config=lora)
    policy = reference.model
    set_peft_model_state_dict(policy, load_file(folder / "adapter" / "adapter_model.safetensors"))
    examples = [{"prompt_ids": t.chosen_ids[:t.chosen_prompt_length],
                 "chosen_ids": t.chosen_ids[t.chosen_prompt_length:],
                 "rejected_ids": t.rejected_ids[t.rejected_prompt_length:]} for t in tokenized]
    batch = reference.data_collator(examples)
    policy.train()
    loss = reference.compute_loss(policy, batch)
    loss.backward()
    metrics = reference._metrics["train"]

    assert abs(ours["loss"].item() - loss.item()) < TOLERANCE
    assert abs(ours["chosen_rewards"].mean().item() - metrics["rewards/chosen"][-1]) < TOLERANCE
    assert abs(ours["rejected_rewards"].mean().item() - metrics["rewards/rejected"][-1]) < TOLERANCE
    # The adapter's B is not zero, so the policy differs from the reference.
    assert abs(metrics["rewards/margins"][-1]) > 1e-3
    compare_grads(medfair_grads(model), peft_grads(policy))
