"""Activation checkpointing gives the same loss and adapter gradients.

SmolLM2-135M-Instruct with LoRA adapters (random B, so every adapter matrix
gets a gradient) runs a padded batch of two chat prompts built from the
project's vignettes, with and without checkpointing. The loss is the mean
log-probability of the prompt tokens. Adapter dropout is on, so the test also
checks that the backward pass's second run draws the same dropout masks.
"""

from __future__ import annotations

import pytest
import torch
from align_support import randomize_b, vignette_records

ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def adapted(gguf_path):
    import medfair

    model = medfair.CausalLM.load(str(gguf_path))
    model.add_lora(medfair.LoraOptions(r=8, alpha=16.0, dropout=0.1, target_modules=ALL_TARGETS, seed=5))
    randomize_b(model)
    return model


def chat_batch(model):
    prompts = []
    for record in vignette_records(2):
        prompts.append(model.encode_prompt(model.apply_chat_template(record["prompt"], True)))
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    return ids, mask


def loss_and_gradients(model, ids, mask, checkpointing):
    parameters = model.adapter_state_dict()
    for tensor in parameters.values():
        tensor.grad = None
    model.gradient_checkpointing = checkpointing
    model.training = True
    torch.manual_seed(11)
    try:
        logits = model.output_logits(model.hidden_states(ids, mask))
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        real = mask[:, 1:].bool() & mask[:, :-1].bool()
        loss = -log_probs[real].mean()
        loss.backward()
    finally:
        model.training = False
        model.gradient_checkpointing = False
    return loss.item(), {name: tensor.grad.clone() for name, tensor in parameters.items()}


def test_checkpointing_matches_full(adapted):
    ids, mask = chat_batch(adapted)
    assert mask.sum(1).min() > 50
    assert (mask == 0).any()

    loss, gradients = loss_and_gradients(adapted, ids, mask, checkpointing=False)
    checkpointed_loss, checkpointed_gradients = loss_and_gradients(adapted, ids, mask, checkpointing=True)

    assert abs(loss - checkpointed_loss) < TOLERANCE
    assert gradients.keys() == checkpointed_gradients.keys()
    assert len(gradients) == 30 * len(ALL_TARGETS) * 2
    for name, gradient in gradients.items():
        assert gradient.abs().max().item() > 0, name
        difference = (gradient - checkpointed_gradients[name]).abs().max().item()
        assert difference <= TOLERANCE * max(1.0, gradient.abs().max().item()), name


def test_checkpointing_dropout_draws_differ(adapted):
    # A different seed draws other dropout masks, so the loss changes: the
    # agreement above is not a case of dropout being inactive.
    ids, mask = chat_batch(adapted)
    loss, _ = loss_and_gradients(adapted, ids, mask, checkpointing=True)
    adapted.gradient_checkpointing = True
    adapted.training = True
    torch.manual_seed(12)
    try:
        with torch.no_grad():
            logits = adapted.output_logits(adapted.hidden_states(ids, mask))
    finally:
        adapted.training = False
        adapted.gradient_checkpointing = False
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    real = mask[:, 1:].bool() & mask[:, :-1].bool()
    assert abs(-log_probs[real].mean().item() - loss) > 1e-4


def test_checkpointing_trainer_batch(gguf_path):
    # The SimPO loss of a trainer batch, through TrainerOptions.
    import medfair
    from medfair.align import trainer_options

    model = medfair.CausalLM.load(str(gguf_path))
    options = trainer_options(gradient_checkpointing=True, lora_r=8, lora_alpha=16.0, target_modules="all")
    trainer = medfair.SimPOTrainer(model, options)
    assert model.gradient_checkpointing
    randomize_b(model)
    pairs = [medfair.render_preference(record, model) for record in vignette_records(2)]

    checkpointed = trainer.compute_batch(pairs)
    checkpointed_gradients = {name: t.grad.clone() for name, t in model.adapter_state_dict().items()}
    model.gradient_checkpointing = False
    full = trainer.compute_batch(pairs)
    gradients = {name: t.grad.clone() for name, t in model.adapter_state_dict().items()}

    assert abs(full["loss"].detach().item() - checkpointed["loss"].detach().item()) < TOLERANCE
    for name, gradient in gradients.items():
        difference = (gradient - checkpointed_gradients[name]).abs().max().item()
        assert difference <= TOLERANCE * max(1.0, gradient.abs().max().item()), name
