"""Chat template families against transformers' own Jinja rendering.

The template strings below are the chat templates published with each model
family's tokenizer_config.json; transformers compiles and renders them with the
same function apply_chat_template uses.
"""

import pytest

import medfair._core as core

QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

TEMPLATES = {
    "qwen2": (QWEN2, "", "", "chatml"),
    "chatml": (CHATML, "", "", "chatml"),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>", "llama3"),
    "llama2": (LLAMA2, "<s>", "</s>", "llama2"),
    "gemma": (GEMMA, "<bos>", "<eos>", "gemma"),
    "mistral": (MISTRAL, "<s>", "</s>", "mistral"),
}

CONTENT = "  A 45-year-old patient reports pain of 8/10.\n\nWhat dose?  \t"
CONVERSATIONS = [
    [("user", CONTENT)],
    [("system", "You are a careful clinician."), ("user", CONTENT)],
    [("user", "Q1 "), ("assistant", " A1\n"), ("user", "日本語 😀")],
    [("system", ""), ("user", "hi")],
]


def reference(template, messages, add_generation_prompt, bos, eos):
    from transformers.utils.chat_template_utils import _compile_jinja_template

    return _compile_jinja_template(template).render(
        messages=[{"role": r, "content": c} for r, c in messages],
        add_generation_prompt=add_generation_prompt,
        bos_token=bos,
        eos_token=eos,
    )


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_family_matches_jinja(name):
    template, bos, eos, family = TEMPLATES[name]
    assert core.chat_template_family(template)[0] == family
    for messages in CONVERSATIONS:
        if name == "gemma" and messages[0][0] == "system":
            continue
        if name == "mistral" and messages[0][0] == "system":
            continue
        for add_generation_prompt in (True, False):
            expected = reference(template, messages, add_generation_prompt, bos, eos)
            assert core.render_chat(template, messages, add_generation_prompt, bos, eos) == expected
            # The family name with default tokens renders the same.
            if name not in ("qwen2",):
                assert core.render_chat(family, messages, add_generation_prompt) == expected


def test_qwen2_default_system():
    assert core.chat_template_family(QWEN2) == ("chatml", "You are a helpful assistant.")
    assert core.chat_template_family(CHATML) == ("chatml", None)


@pytest.mark.parametrize("name", ["gemma", "mistral"])
def test_system_role_rejected(name):
    template, bos, eos, _ = TEMPLATES[name]
    with pytest.raises(core.DataError, match=name):
        core.render_chat(template, [("system", "s"), ("user", "u")], True, bos, eos)


def test_llama2_roles_must_alternate():
    with pytest.raises(core.DataError, match="must alternate"):
        core.render_chat("llama2", [("user", "a"), ("user", "b")])


def test_unknown_template_named():
    template = "{% for m in messages %}<<custom>>{{ m['content'] }}{% endfor %} and more text after sixty characters"
    with pytest.raises(core.ConfigError, match=r"starts with .\{% for m in messages %\}<<custom>>") as error:
        core.render_chat(template, [("user", "x")])
    assert "already formatted prompt" in str(error.value)
    assert "after sixty" not in str(error.value)


def test_unknown_family_name():
    with pytest.raises(core.ConfigError, match='unknown chat template family "vicuna"'):
        core.render_chat("vicuna", [("user", "x")])
