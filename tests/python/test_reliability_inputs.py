"""Bad model config.json files: each raises the documented error class and message.

The rows of docs/reliability.md that name this file point at these tests.
"""

from __future__ import annotations

import json
import pathlib

import pytest

import medfair

LLAMA_CONFIG = {
    "model_type": "llama",
    "vocab_size": 32,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 32,
    "rms_norm_eps": 1e-5,
    "max_position_embeddings": 64,
}


def _folder(tmp_path: pathlib.Path, config_text: str) -> pathlib.Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(config_text, encoding="utf-8")
    return folder


def _config(**changes) -> str:
    config = dict(LLAMA_CONFIG)
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    return json.dumps(config)


def test_config_invalid_json(tmp_path):
    folder = _folder(tmp_path, '{"model_type": "llama", ')
    with pytest.raises(medfair.FormatError, match=r"config.json: invalid JSON"):
        medfair.CausalLM.load(str(folder))


def test_config_not_object(tmp_path):
    folder = _folder(tmp_path, "[1, 2]")
    with pytest.raises(medfair.FormatError, match=r"config.json: expected a JSON object"):
        medfair.CausalLM.load(str(folder))


def test_config_unknown_model_type(tmp_path):
    folder = _folder(tmp_path, _config(model_type="gpt2"))
    with pytest.raises(medfair.ModelError, match=r'config.json: model_type "gpt2" is not supported; medfair implements'):
        medfair.CausalLM.load(str(folder))


def test_config_missing_field(tmp_path):
    folder = _folder(tmp_path, _config(vocab_size=None))
    with pytest.raises(medfair.ConfigError, match=r'missing or non-integer field "vocab_size"'):
        medfair.CausalLM.load(str(folder))


def test_config_head_mismatch(tmp_path):
    folder = _folder(tmp_path, _config(num_key_value_heads=3))
    with pytest.raises(medfair.ConfigError, match=r"n_head 4 is not a multiple of n_head_kv 3"):
        medfair.CausalLM.load(str(folder))


def test_config_wrong_field_type(tmp_path):
    folder = _folder(tmp_path, _config(rms_norm_eps="small"))
    with pytest.raises(medfair.ConfigError, match=r"config.json: a field has the wrong type"):
        medfair.CausalLM.load(str(folder))


def test_config_unknown_rope_scaling(tmp_path):
    folder = _folder(tmp_path, _config(rope_scaling={"type": "yarn", "factor": 4.0}))
    with pytest.raises(medfair.ConfigError, match=r'rope scaling type "yarn" is not supported; use none, linear or llama3'):
        medfair.CausalLM.load(str(folder))
