"""safetensors reading and writing, checked against the safetensors package."""

import json
import os
import pathlib
import re

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from safetensors.torch import save_file as torch_save_file

import medfair
from medfair._core import io as mio

MINILM = os.environ.get("MEDFAIR_MINILM_DIR", "")

NUMPY_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def random_tensors(rng):
    return {
        "layer.weight": rng.standard_normal((4, 6)).astype(np.float32),
        "layer.bias": rng.standard_normal(6).astype(np.float16),
        "wide": rng.standard_normal((2, 2, 2)).astype(np.float64),
        "ids": rng.integers(-(2**40), 2**40, size=5, dtype=np.int64),
        "i32": rng.integers(-1000, 1000, size=3, dtype=np.int32),
        "i16": rng.integers(-1000, 1000, size=3, dtype=np.int16),
        "i8": rng.integers(-100, 100, size=7, dtype=np.int8),
        "u8": rng.integers(0, 255, size=7, dtype=np.uint8),
        "mask": rng.integers(0, 2, size=9).astype(np.bool_),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(3.5, dtype=np.float32),
    }


def test_reads_file_written_by_safetensors(tmp_path):
    tensors = random_tensors(np.random.default_rng(1))
    path = tmp_path / "ref.safetensors"
    save_file(tensors, str(path), metadata={"format": "np", "note": "ünïcode"})

    ours = mio.SafetensorsFile(str(path))
    assert ours.metadata == {"format": "np", "note": "ünïcode"}
    assert ours.tensor_names() == sorted(tensors)
    for name, array in tensors.items():
        dtype = ours.dtype(name)
        assert NUMPY_DTYPES[dtype] == array.dtype.type, name
        assert ours.shape(name) == list(array.shape), name
        assert ours.tensor_bytes(name) == array.tobytes(), name
    for name in ["layer.weight", "layer.bias", "wide", "empty", "scalar"]:
        expected = tensors[name].astype(np.float32)
        got = ours.to_float(name)
        assert got.shape == expected.shape
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), name
    with pytest.raises(medfair.ModelError, match="tensor 'ids' has dtype I64"):
        ours.to_float("ids")


def test_reads_bf16_written_by_torch(tmp_path):
    values = torch.randn(5, 7, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    torch_save_file({"w": values, "f": values.float()}, str(path))
    ours = mio.SafetensorsFile(str(path))
    assert ours.dtype("w") == "BF16"
    got = ours.to_float("w")
    expected = values.float().numpy()
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(ours.to_float("f"), expected)


def test_written_file_loads_in_safetensors(tmp_path):
    tensors = random_tensors(np.random.default_rng(2))
    spec = {}
    for name, array in tensors.items():
        dtype = next(k for k, v in NUMPY_DTYPES.items() if v == array.dtype.type)
        spec[name] = (dtype, list(array.shape), array.tobytes())
    path = tmp_path / "ours.safetensors"
    mio.write_safetensors(str(path), spec, {"format": "pt"})

    loaded = load_file(str(path))
    assert sorted(loaded) == sorted(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype, name
        assert loaded[name].shape == array.shape, name
        assert loaded[name].tobytes() == array.tobytes(), name
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_written_layout_matches_safetensors_bytes(tmp_path):
    """For tensors of one dtype, our file is byte-identical to the package's."""
    rng = np.random.default_rng(4)
    tensors = {"b": rng.standard_normal(3).astype(np.float32), "a": rng.standard_normal((2, 2)).astype(np.float32)}
    reference = tmp_path / "ref.safetensors"
    save_file(tensors, str(reference), metadata={"format": "pt"})
    ours = tmp_path / "ours.safetensors"
    mio.write_safetensors(str(ours), {k: ("F32", list(v.shape), v.tobytes()) for k, v in tensors.items()},
                          {"format": "pt"})
    assert ours.read_bytes() == reference.read_bytes()


def test_written_bf16_loads_in_torch(tmp_path):
    from safetensors.torch import load_file as torch_load_file

    values = torch.randn(4, 3, generator=torch.Generator().manual_seed(5)).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    mio.write_safetensors(str(path), {"w": ("BF16", [4, 3], values.view(torch.int16).numpy().tobytes())})
    loaded = torch_load_file(str(path))
    assert loaded["w"].dtype == torch.bfloat16
    assert torch.equal(loaded["w"], values)


def test_writer_rejects_size_mismatch(tmp_path):
    with pytest.raises(medfair.ConfigError, match="tensor 'w' has 8 data bytes, but dtype F32 with shape \\[3\\]"):
        mio.write_safetensors(str(tmp_path / "bad.safetensors"), {"w": ("F32", [3], b"\0" * 8)})
    assert not list(tmp_path.iterdir())


def test_bad_inputs_raise_format_error(tmp_path):
    good = np.arange(4, dtype=np.float32)
    path = tmp_path / "good.safetensors"
    save_file({"w": good}, str(path))
    raw = path.read_bytes()
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_length])

    def variant(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return str(p)

    def with_header(name, new_header, data=raw[8 + header_length :]):
        text = json.dumps(new_header).encode()
        return variant(name, len(text).to_bytes(8, "little") + text + data)

    cases = [
        (variant("eof.safetensors", (10**6).to_bytes(8, "little") + raw[8:]), "passes the end of the file"),
        (variant("json.safetensors", (5).to_bytes(8, "little") + b"{oops" + b"\0" * 16), "not valid JSON"),
        (with_header("range.safetensors", {"w": {**header["w"], "data_offsets": [0, 32]}}),
         "data_offsets [0, 32] pass the end of the data section (16 bytes)"),
        (with_header("dtype.safetensors", {"w": {**header["w"], "dtype": "F64"}}),
         "span 16 bytes, but dtype F64 with shape [4] needs 32 bytes"),
        (with_header("overlap.safetensors",
                     {"w": header["w"], "v": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}),
         "overlap"),
        (variant("cut.safetensors", raw[:-4]), "pass the end of the data section"),
    ]
    for path, message in cases:
        with pytest.raises(medfair.FormatError, match=re.escape(message)):
            mio.SafetensorsFile(path)


def test_minilm_matches_safetensors():
    if not MINILM:
        pytest.fail('MEDFAIR_MINILM_DIR is not set; run eval "$(python scripts/asset_paths.py)"')
    path = pathlib.Path(MINILM) / "model.safetensors"
    reference = load_file(str(path))
    ours = mio.SafetensorsFile(str(path))
    assert ours.tensor_names() == sorted(reference)
    for name, array in reference.items():
        assert ours.shape(name) == list(array.shape), name
        assert ours.tensor_bytes(name) == array.tobytes(), name
    got = ours.to_float("embeddings.word_embeddings.weight")
    assert np.array_equal(got, reference["embeddings.word_embeddings.weight"].astype(np.float32))
