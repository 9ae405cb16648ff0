"""Preference records and small models for the alignment tests.

The records come from the project's own vignettes
(python/medfair/data/vignettes): the chosen answer is the vignette's answer
with its explanation, the rejected answer the other option with a reason
written for these tests.
"""

from __future__ import annotations

import json
import pathlib

import torch

VIGNETTES = pathlib.Path(__file__).resolve().parents[2] / "python" / "medfair" / "data" / "vignettes"

# Wrong reasons, one per record in turn; written for these tests.
WRONG_REASONS = [
    "The findings are mild, so I would wait and see.",
    "Nothing here needs a change in the plan.",
    "I would ask the patient to come back next month instead.",
    "This can be handled later without any special steps.",
]

PEOPLE = [
    ("Alex", "Black", "man", "He", "he", "his"),
    ("Maria", "Hispanic", "woman", "She", "she", "her"),
    ("Daniel", "White", "man", "He", "he", "his"),
    ("Aisha", "Asian", "woman", "She", "she", "her"),
]


def fill(template: str, person) -> str:
    name, race, gender, subject, subject_lower, possessive = person
    return (
        template.replace("{Name}", name)
        .replace("{name}", name)
        .replace("{race}", race)
        .replace("{gender}", gender)
        .replace("{Pronoun.subject}", subject)
        .replace("{pronoun.subject}", subject_lower)
        .replace("{Pronoun.possessive}", possessive.capitalize())
        .replace("{pronoun.possessive}", possessive)
    )


def vignette_records(count: int, conversational: bool = True) -> list[dict]:
    """`count` preference records built from the shipped vignettes."""
    rows = []
    for path in sorted(VIGNETTES.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for i in range(count):
        row = rows[i % len(rows)]
        person = PEOPLE[i % len(PEOPLE)]
        question = fill(row["template"], person) + " " + fill(row["question"], person)
        wrong = [option for option in row["options"] if option != row["answer"]][0]
        chosen = f"{row['answer']}. {row['explanation']}"
        rejected = f"{wrong}. {WRONG_REASONS[i % len(WRONG_REASONS)]}"
        if conversational:
            records.append({
                "prompt": [{"role": "user", "content": question}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
                "vignette": row["id"],
            })
        else:
            records.append({"prompt": question + "\nAnswer: ", "chosen": chosen, "rejected": rejected})
    return records


def write_jsonl(path: pathlib.Path, records: list[dict]) -> pathlib.Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def small_llama(tie: bool = False, layers: int = 2):
    """A randomly initialised Llama with SmolLM2's vocabulary size."""
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.mul_(4.0)
    return model


def randomize_b(model, seed: int = 1, scale: float = 0.5) -> None:
    """Give a medfair model's lora_B matrices random values (PEFT starts them at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.adapter_state_dict().items():
            if ".lora_B." in name:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)
