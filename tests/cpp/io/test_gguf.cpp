#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "gguf_builder.hpp"
#include "medfair/error.hpp"
#include "medfair/io/gguf.hpp"
#include "medfair/io/half.hpp"
#include "test_support.hpp"

using namespace medfair;
using namespace medfair::io;
using Catch::Matchers::Contains;
using medfair::test::GGUFBuilder;

namespace {

constexpr std::uint32_t kF32 = 0;
constexpr std::uint32_t kQ8_0 = 8;
constexpr std::uint32_t kIQ2_XXS = 16;

std::filesystem::path scratch(const std::string& name) { return medfair::test::scratch_dir("io_gguf") / name; }

// A valid file: two metadata keys and one 4 x 2 F32 tensor holding 0..7.
GGUFBuilder small_file() {
  GGUFBuilder b;
  b.header(1, 2).kv_string("general.architecture", "llama").kv_u32("llama.block_count", 2);
  b.tensor_info("w", {4, 2}, kF32, 0).pad();
  for (int i = 0; i < 8; ++i) b.f32(static_cast<float>(i));
  return b;
}

// Opens `bytes` and returns the FormatError message ("" when none is thrown).
template <typename Error = FormatError>
std::string open_error(const GGUFBuilder& b, const std::string& name) {
  const auto path = b.write(scratch(name));
  try {
    GGUFFile::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("gguf reads a small valid file", "[gguf]") {
  const auto file = GGUFFile::open(small_file().write(scratch("small.gguf")));
  CHECK(file.version() == 3);
  CHECK(file.alignment() == 32);
  CHECK(file.data_offset() % 32 == 0);
  CHECK(file.get_string("general.architecture") == "llama");
  CHECK(file.get_int("llama.block_count") == 2);
  REQUIRE(file.tensors().size() == 1);
  const auto& w = file.tensor("w");
  CHECK(w.dims == std::vector<std::int64_t>{4, 2});
  CHECK(GGUFFile::torch_shape(w) == std::vector<std::int64_t>{2, 4});
  CHECK(w.n_elements == 8);
  CHECK(w.n_bytes == 32);
  CHECK(file.dequantize(w) == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(file.find_tensor("missing") == nullptr);
  CHECK_THROWS_AS(file.tensor("missing"), ModelError);
}

TEST_CASE("gguf reads every metadata value type", "[gguf]") {
  GGUFBuilder b;
  b.header(0, 14);
  b.str("u8").u32(0).u8(200);
  b.str("i8").u32(1).u8(0xFF);
  b.str("u16").u32(2).raw("\x34\x12", 2);
  b.str("i16").u32(3).raw("\xFE\xFF", 2);
  b.kv_u32("u32", 4000000000u);
  b.str("i32").u32(5).u32(0xFFFFFFFBu);
  b.str("f32").u32(6).f32(0.5f);
  b.str("bool").u32(7).u8(1);
  b.kv_string("str", "héllo");
  b.str("u64").u32(10).u64(1ull << 40);
  b.str("i64").u32(11).u64(static_cast<std::uint64_t>(-7));
  const double pi = 3.141592653589793;
  b.str("f64").u32(12).raw(&pi, 8);
  b.str("strings").u32(9).u32(8).u64(2).str("a").str("bc");
  // array[array[int32]]: [[1, 2], [3]]
  b.str("nested").u32(9).u32(9).u64(2).u32(5).u64(2).u32(1).u32(2).u32(5).u64(1).u32(3);
  const auto file = GGUFFile::open(b.write(scratch("types.gguf")));

  CHECK(file.get_int("u8") == 200);
  CHECK(file.get_int("i8") == -1);
  CHECK(file.get_int("u16") == 0x1234);
  CHECK(file.get_int("i16") == -2);
  CHECK(file.get_int("u32") == 4000000000);
  CHECK(file.get_int("i32") == -5);
  CHECK(file.get_float("f32") == 0.5);
  CHECK(file.get_bool("bool"));
  CHECK(file.get_string("str") == "héllo");
  CHECK(file.get_int("u64") == (1ll << 40));
  CHECK(file.get_int("i64") == -7);
  CHECK(file.get_float("f64") == pi);
  CHECK(file.get_string_array("strings") == std::vector<std::string>{"a", "bc"});
  CHECK(file.get_array_length("strings") == 2);
  const GGUFValue* nested = file.find("nested");
  REQUIRE(nested != nullptr);
  CHECK(nested->type_name() == "array[array[int32]]");
  const auto& outer = std::get<GGUFArray>(nested->value);
  REQUIRE(outer.items.size() == 2);
  CHECK(std::get<GGUFArray>(outer.items[0].value).items.size() == 2);
  CHECK(std::get<std::int32_t>(std::get<GGUFArray>(outer.items[1].value).items[0].value) == 3);
  CHECK(file.metadata().front().key == "u8");
}

TEST_CASE("gguf getters name key and types", "[gguf]") {
  const auto file = GGUFFile::open(small_file().write(scratch("getters.gguf")));
  CHECK_THROWS_WITH(file.get_string("llama.block_count"),
                    Contains("'llama.block_count' has type uint32, expected string"));
  CHECK_THROWS_AS(file.get_string("llama.block_count"), ModelError);
  CHECK_THROWS_WITH(file.get_int("llama.head_count"), Contains("'llama.head_count'") && Contains("is missing"));
  CHECK_THROWS_WITH(file.get_float("general.architecture"), Contains("has type string, expected float32 or float64"));
  CHECK_THROWS_WITH(file.get_string_array("general.architecture"), Contains("expected array[string]"));
  CHECK_FALSE(file.get_int_opt("llama.head_count").has_value());
  CHECK(file.get_string_opt("general.architecture") == std::optional<std::string>("llama"));
  CHECK_THROWS_AS(file.get_bool_opt("general.architecture"), ModelError);
}

TEST_CASE("gguf truncated at any cut point", "[gguf]") {
  const GGUFBuilder full = small_file();
  const std::size_t cuts[] = {0, 3, 4, 7, 15, 23, 30, 40, 60, 70, full.bytes.size() - 40, full.bytes.size() - 1};
  for (const std::size_t cut : cuts) {
    INFO("cut at " << cut << " of " << full.bytes.size());
    GGUFBuilder b;
    b.bytes.assign(full.bytes.begin(), full.bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    CHECK_THAT(open_error(b, "cut.gguf"), Contains("truncated"));
  }
}

TEST_CASE("gguf rejects wrong magic", "[gguf]") {
  GGUFBuilder b = small_file();
  std::memcpy(b.bytes.data(), "GGML", 4);
  CHECK_THAT(open_error(b, "magic.gguf"), Contains("expected the magic \"GGUF\", found \"GGML\""));
}

TEST_CASE("gguf rejects versions 1 and 99", "[gguf]") {
  GGUFBuilder v1;
  v1.header(0, 0, 1);
  CHECK_THAT(open_error(v1, "v1.gguf"), Contains("GGUF version 1 is not supported"));
  GGUFBuilder v99;
  v99.header(0, 0, 99);
  CHECK_THAT(open_error(v99, "v99.gguf"), Contains("unsupported GGUF version 99; supported versions are 2 and 3"));
  GGUFBuilder big_endian;
  big_endian.header(0, 0, 0x03000000u);
  CHECK_THAT(open_error(big_endian, "be.gguf"), Contains("big-endian GGUF version 3 is not supported"));
  GGUFBuilder v2;
  v2.header(0, 0, 2);
  CHECK(GGUFFile::open(v2.write(scratch("v2.gguf"))).version() == 2);
}

TEST_CASE("gguf unknown tensor type", "[gguf]") {
  GGUFBuilder b;
  b.header(1, 0).tensor_info("w", {32}, 99, 0).pad();
  b.bytes.resize(b.bytes.size() + 256);
  const std::string message = open_error<ModelError>(b, "type99.gguf");
  CHECK_THAT(message, Contains("tensor 'w'") && Contains("unknown ggml type 99"));
}

TEST_CASE("gguf undequantizable type names supported", "[gguf]") {
  GGUFBuilder b;
  b.header(1, 0).tensor_info("iq", {256}, kIQ2_XXS, 0).pad();
  b.bytes.resize(b.bytes.size() + 66);
  const auto file = GGUFFile::open(b.write(scratch("iq2.gguf")));
  const auto& info = file.tensor("iq");
  CHECK(info.n_bytes == 66);
  std::vector<float> out(256);
  CHECK_THROWS_AS(file.dequantize(info, out.data()), ModelError);
  CHECK_THROWS_WITH(file.dequantize(info, out.data()),
                    Contains("tensor 'iq' has type IQ2_XXS") && Contains("F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0") &&
                        Contains("Q6_K, Q8_K, BF16"));
}

TEST_CASE("gguf rejects absurd string length", "[gguf]") {
  GGUFBuilder huge;
  huge.header(0, 1).u64(4ull << 30).raw("key and padding.", 16);
  CHECK_THAT(open_error(huge, "str4g.gguf"), Contains("metadata key length 4294967296 exceeds the limit"));
  GGUFBuilder past_end;
  past_end.header(0, 1).u64(1000).raw("key and padding.", 16);
  CHECK_THAT(open_error(past_end, "str1000.gguf"),
             Contains("metadata key length 1000 exceeds the 16 bytes left in the file"));
  GGUFBuilder value;
  value.header(0, 1).str("k").u32(8).u64(~0ull);
  CHECK_THAT(open_error(value, "strval.gguf"), Contains("string length 18446744073709551615 exceeds the limit"));
}

TEST_CASE("gguf rejects absurd counts", "[gguf]") {
  GGUFBuilder keys;
  keys.header(0, 1'000'000'000);
  CHECK_THAT(open_error(keys, "keys.gguf"), Contains("metadata key count 1000000000 exceeds the limit of 1000000"));
  GGUFBuilder keys_small;
  keys_small.header(0, 1000).kv_u32("a", 1);
  CHECK_THAT(open_error(keys_small, "keys1000.gguf"), Contains("metadata key count 1000 cannot fit"));
  GGUFBuilder tensors;
  tensors.header(1ull << 40, 0);
  CHECK_THAT(open_error(tensors, "tensors.gguf"), Contains("tensor count 1099511627776 exceeds the limit"));
  GGUFBuilder array;
  array.header(0, 1).str("a").u32(9).u32(4).u64(1ull << 29).u32(1);
  CHECK_THAT(open_error(array, "array.gguf"), Contains("array of 536870912 uint32 values cannot fit"));
}

TEST_CASE("gguf rejects absurd element counts", "[gguf]") {
  GGUFBuilder overflow;
  overflow.header(1, 0).tensor_info("w", {1ull << 32, 1ull << 32, 1ull << 32, 1}, kF32, 0).pad();
  CHECK_THAT(open_error(overflow, "overflow.gguf"), Contains("tensor 'w' has more than INT64_MAX elements"));
  GGUFBuilder huge;
  huge.header(1, 0).tensor_info("w", {1ull << 30, 1ull << 30}, kF32, 0).pad();
  huge.bytes.resize(huge.bytes.size() + 64);
  CHECK_THAT(open_error(huge, "huge.gguf"), Contains("tensor 'w' data") && Contains("passes the end of the file"));
  GGUFBuilder dims;
  dims.header(1, 0).tensor_info("w", {1, 1, 1, 1, 1}, kF32, 0);
  CHECK_THAT(open_error(dims, "dims.gguf"), Contains("tensor 'w' has 5 dimensions; ggml supports at most 4"));
}

TEST_CASE("gguf rejects tensor data past the end", "[gguf]") {
  GGUFBuilder b;
  b.header(1, 0).tensor_info("w", {16}, kF32, 0).pad();
  b.bytes.resize(b.bytes.size() + 32);  // 8 of the 16 floats
  CHECK_THAT(open_error(b, "short.gguf"), Contains("tensor 'w' data [0, 0 + 64)") && Contains("passes the end"));
}

TEST_CASE("gguf rejects misaligned offsets", "[gguf]") {
  GGUFBuilder b;
  b.header(1, 0).tensor_info("w", {4}, kF32, 4).pad();
  b.bytes.resize(b.bytes.size() + 64);
  CHECK_THAT(open_error(b, "misaligned.gguf"), Contains("tensor 'w' data offset 4 is not a multiple of the alignment 32"));
  GGUFBuilder custom;
  custom.header(1, 1).kv_u32("general.alignment", 64).tensor_info("w", {4}, kF32, 32).pad(64);
  custom.bytes.resize(custom.bytes.size() + 64);
  CHECK_THAT(open_error(custom, "misaligned64.gguf"), Contains("is not a multiple of the alignment 64"));
  GGUFBuilder bad;
  bad.header(0, 1).kv_u32("general.alignment", 48);
  CHECK_THAT(open_error(bad, "align48.gguf"), Contains("general.alignment 48 is not a power of two"));
}

TEST_CASE("gguf rejects duplicates and overlaps", "[gguf]") {
  GGUFBuilder keys;
  keys.header(0, 2).kv_u32("a", 1).kv_u32("a", 2);
  CHECK_THAT(open_error(keys, "dupkey.gguf"), Contains("duplicate metadata key 'a'"));
  GGUFBuilder tensors;
  tensors.header(2, 0).tensor_info("w", {8}, kF32, 0).tensor_info("w", {8}, kF32, 32).pad();
  tensors.bytes.resize(tensors.bytes.size() + 64);
  CHECK_THAT(open_error(tensors, "duptensor.gguf"), Contains("duplicate tensor name 'w'"));
  GGUFBuilder overlap;
  overlap.header(2, 0).tensor_info("a", {16}, kF32, 0).tensor_info("b", {8}, kF32, 32).pad();
  overlap.bytes.resize(overlap.bytes.size() + 128);
  CHECK_THAT(open_error(overlap, "overlap.gguf"), Contains("tensor 'b' data at 32 overlaps tensor 'a' at 0"));
}

TEST_CASE("gguf rejects other malformed headers", "[gguf]") {
  GGUFBuilder block;
  block.header(1, 0).tensor_info("q", {33}, kQ8_0, 0).pad();
  block.bytes.resize(block.bytes.size() + 128);
  CHECK_THAT(open_error(block, "block.gguf"), Contains("33 elements per row") && Contains("block size 32"));
  GGUFBuilder value_type;
  value_type.header(0, 1).str("k").u32(13);
  CHECK_THAT(open_error(value_type, "vtype.gguf"), Contains("unknown value type of key 'k' 13"));
  GGUFBuilder boolean;
  boolean.header(0, 1).str("k").u32(7).u8(2);
  CHECK_THAT(open_error(boolean, "bool.gguf"), Contains("bool value 2 is neither 0 nor 1"));
  GGUFBuilder deep;
  deep.header(0, 1).str("k").u32(9);
  for (int i = 0; i < 20; ++i) deep.u32(9).u64(1);
  deep.u32(4).u64(0);
  CHECK_THAT(open_error(deep, "deep.gguf"), Contains("arrays are nested more than 8 deep"));
  GGUFBuilder alignment_type;
  alignment_type.header(0, 1).kv_string("general.alignment", "32");
  CHECK_THAT(open_error(alignment_type, "aligntype.gguf"), Contains("general.alignment has type string, expected uint32"));
}

TEST_CASE("gguf limits are configurable", "[gguf]") {
  const auto path = small_file().write(scratch("limits.gguf"));
  GGUFLimits limits;
  limits.max_string_bytes = 4;
  CHECK_THROWS_WITH(GGUFFile::open(path, limits), Contains("metadata key length 20 exceeds the limit of 4 bytes"));
}

TEST_CASE("gguf reads SmolLM2", "[gguf][real]") {
  const auto path = medfair::test::smollm2_gguf();
  if (path.empty()) FAIL("MEDFAIR_SMOLLM2_GGUF is not set; run eval \"$(python scripts/asset_paths.py)\"");
  const auto file = GGUFFile::open(path);
  CHECK(file.version() == 3);
  CHECK(file.metadata().size() == 33);
  CHECK(file.get_string("general.architecture") == "llama");
  CHECK(file.get_int("llama.block_count") == 30);
  CHECK(file.get_int("llama.attention.head_count") == 9);
  CHECK(file.get_int("llama.attention.head_count_kv") == 3);
  CHECK(file.get_int("llama.embedding_length") == 576);
  CHECK(file.get_int("llama.feed_forward_length") == 1536);
  CHECK(file.get_int("llama.context_length") == 8192);
  CHECK(file.get_float("llama.rope.freq_base") == 100000.0);
  CHECK(static_cast<float>(file.get_float("llama.attention.layer_norm_rms_epsilon")) == 1e-5f);
  CHECK(file.get_string("tokenizer.ggml.model") == "gpt2");
  CHECK(file.get_int("tokenizer.ggml.eos_token_id") == 2);
  CHECK_FALSE(file.get_bool("tokenizer.ggml.add_bos_token"));

  const auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  CHECK(tokens.size() == 49152);
  CHECK(tokens[1] == "<|im_start|>");
  CHECK(tokens[2] == "<|im_end|>");
  CHECK(file.get_int_array("tokenizer.ggml.token_type").size() == 49152);
  CHECK(file.get_array_length("tokenizer.ggml.merges") == 48900);
  CHECK_THAT(file.get_string("tokenizer.chat_template"), Contains("<|im_start|>"));

  CHECK(file.tensors().size() == 272);
  const auto& embedding = file.tensor("token_embd.weight");
  CHECK(embedding.type == GGMLType::Q8_0);
  CHECK(embedding.dims == std::vector<std::int64_t>{576, 49152});
  CHECK(GGUFFile::torch_shape(embedding) == std::vector<std::int64_t>{49152, 576});
  CHECK(embedding.file_offset == file.data_offset());
  CHECK(file.tensor("blk.0.ffn_down.weight").type == GGMLType::Q4_1);
  CHECK(file.tensor("blk.29.attn_norm.weight").type == GGMLType::F32);

  // The first Q8_0 block by hand: fp16 scale, then 32 int8 quants.
  const auto values = file.dequantize(embedding);
  REQUIRE(values.size() == 576u * 49152u);
  const auto raw = file.tensor_bytes(embedding);
  std::uint16_t scale_bits;
  std::memcpy(&scale_bits, raw.data(), 2);
  const float scale = fp16_to_fp32(scale_bits);
  for (int j = 0; j < 32; ++j) {
    const auto q = static_cast<std::int8_t>(raw[2 + j]);
    REQUIRE(values[j] == static_cast<float>(q) * scale);
  }

  const auto& norm = file.tensor("blk.0.attn_norm.weight");
  const auto norm_values = file.dequantize(norm);
  const auto norm_raw = file.tensor_bytes(norm);
  CHECK(std::memcmp(norm_values.data(), norm_raw.data(), norm_raw.size()) == 0);
  for (const float v : norm_values) REQUIRE(std::isfinite(v));
}
