"""GGUF reading and dequantization, checked against gguf-py bit for bit."""

import os

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize as gguf_dequantize

import medfair
from medfair._core import io as mio

SMOLLM2 = os.environ.get("MEDFAIR_SMOLLM2_GGUF", "")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two float32 arrays have identical shapes and bit patterns."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.fixture(scope="module")
def smollm2():
    if not SMOLLM2:
        pytest.fail('MEDFAIR_SMOLLM2_GGUF is not set; run eval "$(python scripts/asset_paths.py)"')
    return mio.GGUFFile(SMOLLM2), gguf.GGUFReader(SMOLLM2)


def reference_value(field: gguf.ReaderField):
    """The field's value as plain Python objects, strings decoded."""
    return field.contents()


def test_smollm2_metadata_matches_gguf_py(smollm2):
    ours, reference = smollm2
    keys = [k for k in reference.fields if not k.startswith("GGUF.")]
    assert ours.keys() == keys
    for key in keys:
        expected = reference_value(reference.fields[key])
        got = ours.value(key)
        if isinstance(expected, float):
            # gguf-py returns float32 fields as numpy floats; compare as float32.
            assert np.float32(got) == np.float32(expected), key
        else:
            assert got == expected, key
    assert ours.version == 3
    assert ours.get_string("general.architecture") == "llama"
    assert ours.get_int("llama.block_count") == 30
    assert len(ours.get_string_array("tokenizer.ggml.tokens")) == 49152
    assert len(ours.value("tokenizer.ggml.merges")) == 48900
    assert ours.data_offset == reference.data_offset


def test_smollm2_tensor_table_matches_gguf_py(smollm2):
    ours, reference = smollm2
    table = ours.tensors()
    assert len(table) == len(reference.tensors) == 272
    for info, tensor in zip(table, reference.tensors):
        assert info["name"] == tensor.name
        assert info["dims"] == [int(d) for d in tensor.shape]
        assert info["type_number"] == int(tensor.tensor_type)
        assert info["file_offset"] == tensor.data_offset
        assert info["n_elements"] == tensor.n_elements
        assert info["n_bytes"] == tensor.n_bytes


@pytest.mark.parametrize(
    "name",
    [
        "token_embd.weight",  # Q8_0
        "blk.0.attn_q.weight",  # Q4_1
        "blk.0.ffn_down.weight",
        "blk.17.attn_v.weight",
        "blk.29.ffn_gate.weight",
        "blk.0.attn_norm.weight",  # F32
        "blk.29.ffn_norm.weight",
        "output_norm.weight",
    ],
)
def test_smollm2_dequantize_matches_gguf_py(smollm2, name):
    ours, reference = smollm2
    tensor = next(t for t in reference.tensors if t.name == name)
    expected = gguf_dequantize(tensor.data, tensor.tensor_type)
    got = ours.dequantize(name)
    assert got.shape == tuple(int(d) for d in reversed(tensor.shape))
    assert same_bits(got, expected.reshape(got.shape))


def test_smollm2_every_tensor_matches_gguf_py(smollm2):
    ours, reference = smollm2
    for tensor in reference.tensors:
        expected = gguf_dequantize(tensor.data, tensor.tensor_type)
        got = ours.dequantize(tensor.name)
        assert same_bits(got.reshape(-1), expected.reshape(-1)), tensor.name


# ---- every supported type on random blocks ----

QK_K = 256
# (type, byte ranges holding fp16 scales inside one block, fp32 scale ranges)
SCALE_FIELDS = {
    Q.Q4_0: ([(0, 2)], []),
    Q.Q4_1: ([(0, 2), (2, 4)], []),
    Q.Q5_0: ([(0, 2)], []),
    Q.Q5_1: ([(0, 2), (2, 4)], []),
    Q.Q8_0: ([(0, 2)], []),
    Q.Q2_K: ([(80, 82), (82, 84)], []),
    Q.Q3_K: ([(108, 110)], []),
    Q.Q4_K: ([(0, 2), (2, 4)], []),
    Q.Q5_K: ([(0, 2), (2, 4)], []),
    Q.Q6_K: ([(208, 210)], []),
    Q.Q8_K: ([], [(0, 4)]),
}


def random_finite(rng, n, dtype):
    """n finite values of `dtype` with random bit patterns (subnormals, zeros and
    both signs included; inf and NaN excluded)."""
    bits = {np.float16: np.uint16, np.float32: np.uint32}[dtype]
    raw = rng.integers(0, np.iinfo(bits).max, size=n, dtype=bits, endpoint=True).view(dtype)
    raw[~np.isfinite(raw)] = dtype(1.5)
    return raw


def random_blocks(rng, qtype, n_blocks):
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    data = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    fp16_fields, fp32_fields = SCALE_FIELDS.get(qtype, ([], []))
    for begin, end in fp16_fields:
        # Scales of moderate size keep products finite, as real files do.
        scales = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        data[:, begin:end] = scales.view(np.uint8).reshape(n_blocks, 2)
    for begin, end in fp32_fields:
        scales = (rng.standard_normal(n_blocks) * 0.05).astype(np.float32)
        data[:, begin:end] = scales.view(np.uint8).reshape(n_blocks, 4)
    return data


def reference_dequantize(qtype, data: np.ndarray) -> np.ndarray:
    if qtype == Q.Q8_K:
        # gguf-py 0.8.0 has no Q8_K kernel; ggml's dequantize_row_q8_K is d * q.
        d = data[:, :4].copy().view(np.float32)
        q = data[:, 4 : 4 + QK_K].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    return gguf_dequantize(data, qtype).reshape(-1)


QUANTIZED = list(SCALE_FIELDS)


@pytest.mark.parametrize("qtype", QUANTIZED, ids=lambda t: t.name)
def test_dequantize_row_matches_reference(qtype):
    rng = np.random.default_rng(int(qtype))
    block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = 64
    data = random_blocks(rng, qtype, n_blocks)
    got = mio.dequantize_row(int(qtype), data.tobytes(), n_blocks * block_size)
    expected = reference_dequantize(qtype, data)
    assert np.isfinite(expected).all()
    assert np.count_nonzero(expected) > expected.size // 2  # the blocks exercise real values
    assert same_bits(got, expected)


@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.BF16], ids=lambda t: t.name)
def test_dequantize_row_float_types(qtype, tmp_path):
    rng = np.random.default_rng(int(qtype) + 100)
    if qtype == Q.F32:
        values = random_finite(rng, 4096, np.float32)
        raw = values.view(np.uint8)
    elif qtype == Q.F16:
        values = random_finite(rng, 4096, np.float16)
        raw = values.view(np.uint8)
    else:
        bits = rng.integers(0, 0xFFFF, size=4096, dtype=np.uint16, endpoint=True)
        bits[(bits & 0x7F80) == 0x7F80] = 0x3F80  # no inf or NaN
        raw = bits.view(np.uint8)
    expected = gguf_dequantize(raw, qtype).reshape(-1)
    got = mio.dequantize_row(int(qtype), raw.tobytes(), 4096)
    assert same_bits(got, expected)


@pytest.mark.parametrize("qtype", QUANTIZED + [Q.F16, Q.BF16], ids=lambda t: t.name)
def test_written_gguf_dequantizes_exactly(qtype, tmp_path):
    """A file written by gguf-py's GGUFWriter with raw_dtype reads back exactly."""
    rng = np.random.default_rng(int(qtype) + 1000)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rows, blocks_per_row = 3, 2
    if qtype in SCALE_FIELDS:
        data = random_blocks(rng, qtype, rows * blocks_per_row).reshape(rows, blocks_per_row * type_size)
    else:
        bits = rng.integers(0, 0x7F00, size=(rows, blocks_per_row), dtype=np.uint16)
        data = bits.view(np.uint8).reshape(rows, blocks_per_row * type_size)
    path = tmp_path / f"{qtype.name}.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("t", data, raw_dtype=qtype)
    writer.add_tensor("bias", np.arange(5, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    ours = mio.GGUFFile(str(path))
    info = ours.tensor("t")
    assert info["type"] == qtype.name
    assert info["dims"] == [blocks_per_row * block_size, rows]
    got = ours.dequantize("t")
    assert got.shape == (rows, blocks_per_row * block_size)
    expected = reference_dequantize(qtype, data.reshape(rows * blocks_per_row, type_size))
    assert same_bits(got.reshape(-1), expected)
    assert same_bits(ours.dequantize("bias"), np.arange(5, dtype=np.float32))


def test_written_metadata_types_round_trip(tmp_path):
    path = tmp_path / "meta.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_uint8("t.u8", 250)
    writer.add_int8("t.i8", -100)
    writer.add_uint16("t.u16", 65000)
    writer.add_int16("t.i16", -32000)
    writer.add_uint32("t.u32", 4_000_000_000)
    writer.add_int32("t.i32", -2_000_000_000)
    writer.add_float32("t.f32", 0.1)
    writer.add_uint64("t.u64", 2**63 + 5)
    writer.add_int64("t.i64", -(2**62))
    writer.add_float64("t.f64", 0.1)
    writer.add_bool("t.bool", True)
    writer.add_string("t.str", "tête ✓")
    writer.add_array("t.ints", [1, 2, 3])
    writer.add_array("t.floats", [0.5, 0.25])
    writer.add_array("t.nested", [[1, 2], [3]])
    writer.add_array("t.strings", ["a", "", "ü"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    ours = mio.GGUFFile(str(path))
    assert ours.value("general.architecture") == "llama"
    assert ours.value("t.u8") == 250
    assert ours.value_type("t.u8") == "uint8"
    assert ours.value("t.i8") == -100
    assert ours.value_type("t.i8") == "int8"
    assert ours.value("t.u16") == 65000
    assert ours.value("t.i16") == -32000
    assert ours.value("t.u32") == 4_000_000_000
    assert ours.value("t.i32") == -2_000_000_000
    assert ours.value("t.f32") == float(np.float32(0.1))
    assert ours.value("t.u64") == 2**63 + 5
    assert ours.value("t.i64") == -(2**62)
    assert ours.value("t.f64") == 0.1
    assert ours.value("t.bool") is True
    assert ours.value("t.str") == "tête ✓"
    assert ours.value("t.ints") == [1, 2, 3]
    assert ours.value_type("t.ints") == "array[int32]"
    assert ours.value("t.floats") == [0.5, 0.25]
    assert ours.value("t.nested") == [[1, 2], [3]]
    assert ours.value_type("t.nested") == "array[array[int32]]"
    assert ours.value("t.strings") == ["a", "", "ü"]
    with pytest.raises(medfair.ModelError, match="'t.u64' value 9223372036854775813 exceeds INT64_MAX"):
        ours.get_int("t.u64")
    with pytest.raises(medfair.ModelError, match="'t.str' has type string, expected an integer type"):
        ours.get_int("t.str")


def test_unsupported_type_raises_model_error(tmp_path):
    path = tmp_path / "iq.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("iq", np.zeros((1, 66), dtype=np.uint8), raw_dtype=Q.IQ2_XXS)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    ours = mio.GGUFFile(str(path))
    with pytest.raises(medfair.ModelError, match=r"tensor 'iq' has type IQ2_XXS.*supported types: F32, F16"):
        ours.dequantize("iq")
    assert mio.dequantizable_types() == [
        "F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "BF16",
    ]


def test_truncated_file_raises_format_error(tmp_path):
    if not SMOLLM2:
        pytest.fail("MEDFAIR_SMOLLM2_GGUF is not set")
    with open(SMOLLM2, "rb") as f:
        head = f.read(1_000_000)
    path = tmp_path / "cut.gguf"
    path.write_bytes(head)
    with pytest.raises(medfair.FormatError, match="truncated"):
        mio.GGUFFile(str(path))
