#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "medfair/error.hpp"
#include "medfair/io/atomic_file.hpp"
#include "medfair/io/half.hpp"
#include "medfair/io/mapped_file.hpp"
#include "medfair/io/safetensors.hpp"
#include "test_support.hpp"

using namespace medfair;
using namespace medfair::io;
using Catch::Matchers::Contains;

namespace {

std::filesystem::path scratch(const std::string& name) { return medfair::test::scratch_dir("io_safetensors") / name; }

// Writes an 8-byte length, `header` and `data` without any validation.
std::filesystem::path write_raw(const std::string& name, const std::string& header, std::size_t data_bytes,
                                std::uint64_t declared_length = ~0ull) {
  const auto path = scratch(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::uint64_t length = declared_length == ~0ull ? header.size() : declared_length;
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << header;
  const std::string data(data_bytes, '\0');
  out << data;
  return path;
}

std::string open_error(const std::filesystem::path& path) {
  try {
    SafetensorsFile::open(path);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

template <typename T>
std::span<const std::byte> as_bytes(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

}  // namespace

TEST_CASE("safetensors round trip", "[safetensors]") {
  const std::vector<float> weight{1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
  const std::vector<std::uint16_t> half{fp32_to_fp16(0.5f), fp32_to_fp16(-1.0f)};
  const std::vector<std::uint16_t> brain{fp32_to_bf16(2.0f), fp32_to_bf16(-0.125f), fp32_to_bf16(3.0f)};
  const std::vector<double> wide{0.1, 1e300};
  const std::vector<std::int64_t> ids{1, -2, 3};
  const std::vector<std::uint8_t> flags{1, 0};
  const std::vector<float> scalar{42.0f};
  const std::vector<SafetensorsTensorData> tensors{
      {"weight", SafetensorsDType::F32, {2, 3}, as_bytes(weight)},
      {"half", SafetensorsDType::F16, {2}, as_bytes(half)},
      {"brain", SafetensorsDType::BF16, {3}, as_bytes(brain)},
      {"wide", SafetensorsDType::F64, {2}, as_bytes(wide)},
      {"ids", SafetensorsDType::I64, {3}, as_bytes(ids)},
      {"flags", SafetensorsDType::BOOL, {2}, as_bytes(flags)},
      {"empty", SafetensorsDType::F32, {0, 4}, {}},
      {"scalar", SafetensorsDType::F32, {}, as_bytes(scalar)},
  };
  const auto path = scratch("round_trip.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}});

  const auto file = SafetensorsFile::open(path);
  CHECK(file.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(file.data_offset() % 8 == 0);
  REQUIRE(file.tensors().size() == tensors.size());
  CHECK(file.tensors().front().name == "brain");  // sorted by name
  const auto& w = file.tensor("weight");
  CHECK(w.dtype == SafetensorsDType::F32);
  CHECK(w.shape == std::vector<std::int64_t>{2, 3});
  CHECK(file.to_float(w) == weight);
  CHECK(file.to_float(file.tensor("half")) == std::vector<float>{0.5f, -1.0f});
  CHECK(file.to_float(file.tensor("brain")) == std::vector<float>{2.0f, -0.125f, 3.0f});
  CHECK(file.to_float(file.tensor("wide")) == std::vector<float>{0.1f, std::numeric_limits<float>::infinity()});
  const auto id_bytes = file.tensor_bytes(file.tensor("ids"));
  REQUIRE(id_bytes.size() == 24);
  CHECK(std::memcmp(id_bytes.data(), ids.data(), 24) == 0);
  CHECK(file.tensor("empty").n_elements == 0);
  CHECK(file.to_float(file.tensor("scalar")) == std::vector<float>{42.0f});
  CHECK_THROWS_WITH(file.to_float(file.tensor("ids")), Contains("tensor 'ids' has dtype I64"));
  CHECK_THROWS_AS(file.tensor("nope"), ModelError);

  // The header is padded with spaces to a multiple of 8 and lists the
  // metadata first, as the Python package writes it.
  const MappedFile raw(path);
  std::uint64_t length = 0;
  std::memcpy(&length, raw.bytes(0, 8).data(), 8);
  CHECK(length % 8 == 0);
  const auto header = raw.bytes(8, length);
  const std::string text(reinterpret_cast<const char*>(header.data()), header.size());
  CHECK(text.rfind("{\"__metadata__\":{\"format\":\"pt\"},\"brain\":", 0) == 0);
}

TEST_CASE("safetensors writer rejects bad input", "[safetensors]") {
  const std::vector<float> four{1, 2, 3, 4};
  const std::vector<SafetensorsTensorData> mismatch{{"w", SafetensorsDType::F32, {3}, as_bytes(four)}};
  CHECK_THROWS_AS(serialize_safetensors(mismatch), ConfigError);
  CHECK_THROWS_WITH(serialize_safetensors(mismatch), Contains("tensor 'w' has 16 data bytes"));
  const std::vector<SafetensorsTensorData> duplicate{{"w", SafetensorsDType::F32, {4}, as_bytes(four)},
                                                     {"w", SafetensorsDType::F32, {4}, as_bytes(four)}};
  CHECK_THROWS_WITH(serialize_safetensors(duplicate), Contains("two safetensors tensors named 'w'"));
  const std::vector<SafetensorsTensorData> reserved{{"__metadata__", SafetensorsDType::F32, {4}, as_bytes(four)}};
  CHECK_THROWS_AS(serialize_safetensors(reserved), ConfigError);
  const std::vector<SafetensorsTensorData> negative{{"w", SafetensorsDType::F32, {-1, -4}, as_bytes(four)}};
  CHECK_THROWS_WITH(serialize_safetensors(negative), Contains("negative dimension"));
  CHECK_THROWS_AS(write_safetensors(scratch("missing_folder") / "x" / "w.safetensors", {}), IOError);
}

TEST_CASE("safetensors rejects bad headers", "[safetensors]") {
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(SafetensorsFile::open(write_raw("good.safetensors", good, 8)).tensors().size() == 1);

  CHECK_THAT(open_error(write_raw("short.safetensors", "", 0, 0).replace_extension(".safetensors")),
             Contains("invalid safetensors header: not valid JSON"));
  {
    const auto path = scratch("tiny.safetensors");
    std::ofstream(path, std::ios::binary) << "abc";
    CHECK_THAT(open_error(path), Contains("it has 3 bytes, fewer than the 8-byte header length"));
  }
  CHECK_THAT(open_error(write_raw("past_eof.safetensors", good, 8, 1000)),
             Contains("header length 1000 passes the end of the file (70 bytes)"));
  CHECK_THAT(open_error(write_raw("huge_header.safetensors", good, 8, 1ull << 40)),
             Contains("header length 1099511627776 exceeds the limit of 104857600 bytes"));
  CHECK_THAT(open_error(write_raw("bad_json.safetensors", "{\"a\": [1, 2", 0)), Contains("not valid JSON"));
  CHECK_THAT(open_error(write_raw("array.safetensors", "[1, 2]", 0)), Contains("expected a JSON object, found array"));
  CHECK_THAT(open_error(write_raw("deep.safetensors", R"({"a":{"b":[[[1]]]}})", 0)),
             Contains("nested deeper than the format allows"));
  CHECK_THAT(open_error(write_raw("range.safetensors", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)),
             Contains("tensor 'a' data_offsets [0, 8] pass the end of the data section (4 bytes)"));
  CHECK_THAT(open_error(write_raw("size.safetensors", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
             Contains("tensor 'a' data_offsets [0, 8] span 8 bytes, but dtype F32 with shape [3] needs 12 bytes"));
  CHECK_THAT(open_error(write_raw("reversed.safetensors", R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", 8)),
             Contains("end before they begin"));
  CHECK_THAT(open_error(write_raw("overlap.safetensors",
                                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                  12)),
             Contains("tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]"));
  CHECK_THAT(open_error(write_raw("dtype.safetensors", R"({"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1)),
             Contains("tensor 'a' has unsupported dtype \"F8_E4M3\"; supported dtypes: F64, F32"));
  CHECK_THAT(open_error(write_raw("shape.safetensors", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
             Contains("shape [-1] must hold non-negative integers"));
  CHECK_THAT(open_error(write_raw("elements.safetensors",
                                  R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4)),
             Contains("more than INT64_MAX elements"));
  CHECK_THAT(open_error(write_raw("bytes.safetensors",
                                  R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", 8)),
             Contains("needs more than 2^64 bytes"));
  CHECK_THAT(open_error(write_raw("offsets.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4)),
             Contains("tensor 'a' needs \"data_offsets\": [begin, end]"));
  CHECK_THAT(open_error(write_raw("meta.safetensors", R"({"__metadata__":{"n":1}})", 0)),
             Contains("__metadata__ entry 'n' must be a string, found number"));
  CHECK_THROWS_AS(SafetensorsFile::open(scratch("does_not_exist.safetensors")), IOError);
}

TEST_CASE("safetensors folder with shards", "[safetensors]") {
  const auto folder = medfair::test::scratch_dir("io_safetensors_sharded");
  const std::vector<float> a{1, 2};
  const std::vector<float> b{3, 4, 5};
  const std::vector<SafetensorsTensorData> shard1{{"a", SafetensorsDType::F32, {2}, as_bytes(a)}};
  const std::vector<SafetensorsTensorData> shard2{{"b", SafetensorsDType::F32, {3}, as_bytes(b)}};
  write_safetensors(folder / "model-00001-of-00002.safetensors", shard1);
  write_safetensors(folder / "model-00002-of-00002.safetensors", shard2);
  nlohmann::json index = {{"metadata", {{"total_size", 20}}},
                          {"weight_map",
                           {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  write_file_atomic(folder / "model.safetensors.index.json", index.dump());

  const auto model = SafetensorsFolder::open(folder);
  CHECK(model.files().size() == 2);
  CHECK(model.tensor_names() == std::vector<std::string>{"a", "b"});
  CHECK(model.to_float("b") == b);
  CHECK(model.tensor("a").file->path().filename() == "model-00001-of-00002.safetensors");
  CHECK_FALSE(model.find("c").has_value());
  CHECK_THROWS_WITH(model.tensor("c"), Contains("tensor 'c' not found"));

  index["weight_map"]["c"] = "model-00003-of-00002.safetensors";
  write_file_atomic(folder / "model.safetensors.index.json", index.dump());
  CHECK_THROWS_AS(SafetensorsFolder::open(folder), IOError);
  CHECK_THROWS_WITH(SafetensorsFolder::open(folder),
                    Contains("model-00003-of-00002.safetensors named in the weight_map (for tensor 'c'") &&
                        Contains("is missing"));

  index["weight_map"]["c"] = "model-00001-of-00002.safetensors";
  write_file_atomic(folder / "model.safetensors.index.json", index.dump());
  CHECK_THROWS_WITH(SafetensorsFolder::open(folder),
                    Contains("assigns tensor 'c' to") && Contains("which does not contain it"));

  index["weight_map"]["c"] = "../outside.safetensors";
  write_file_atomic(folder / "model.safetensors.index.json", index.dump());
  CHECK_THROWS_WITH(SafetensorsFolder::open(folder), Contains("which is not a file inside the folder"));

  write_file_atomic(folder / "model.safetensors.index.json", std::string_view("{\"weight_map\": 3}"));
  CHECK_THROWS_WITH(SafetensorsFolder::open(folder), Contains("\"weight_map\" object"));
  write_file_atomic(folder / "model.safetensors.index.json", std::string_view("{oops"));
  CHECK_THROWS_WITH(SafetensorsFolder::open(folder), Contains("not valid JSON"));
}

TEST_CASE("safetensors folder with one file", "[safetensors]") {
  const auto folder = medfair::test::scratch_dir("io_safetensors_single");
  std::filesystem::remove(folder / "model.safetensors");
  CHECK_THROWS_AS(SafetensorsFolder::open(folder), IOError);
  CHECK_THROWS_WITH(SafetensorsFolder::open(folder), Contains("no model.safetensors or model.safetensors.index.json"));
  const std::vector<float> a{1, 2};
  const std::vector<SafetensorsTensorData> tensors{{"a", SafetensorsDType::F32, {2}, as_bytes(a)}};
  write_safetensors(folder / "model.safetensors", tensors);
  const auto model = SafetensorsFolder::open(folder);
  CHECK(model.to_float("a") == a);
}

TEST_CASE("safetensors reads MiniLM", "[safetensors][real]") {
  const auto folder = medfair::test::minilm_dir();
  if (folder.empty()) FAIL("MEDFAIR_MINILM_DIR is not set; run eval \"$(python scripts/asset_paths.py)\"");
  const auto model = SafetensorsFolder::open(folder);
  const auto entry = model.tensor("embeddings.word_embeddings.weight");
  CHECK(entry.info->shape == std::vector<std::int64_t>{30522, 384});
  CHECK(entry.info->dtype == SafetensorsDType::F32);
  const auto values = model.to_float("embeddings.word_embeddings.weight");
  CHECK(values.size() == 30522u * 384u);
}

TEST_CASE("mapped file bounds", "[mapped_file]") {
  const auto path = scratch("ten.bin");
  write_file_atomic(path, std::string_view("0123456789"));
  const MappedFile file(path);
  CHECK(file.size() == 10);
  CHECK(file.bytes(8, 2).size() == 2);
  CHECK(file.bytes(10, 0).empty());
  CHECK_THROWS_AS(file.bytes(8, 3), FormatError);
  CHECK_THROWS_WITH(file.bytes(8, 3), Contains("a read of 3 bytes at offset 8 passes the end of the file (10 bytes)"));
  CHECK_THROWS_AS(file.bytes(~0ull, 2), FormatError);  // offset + length overflows
  CHECK_THROWS_AS(file.bytes(11, 0), FormatError);
  CHECK_THROWS_AS(MappedFile(scratch("absent.bin")), IOError);
  CHECK_THROWS_WITH(MappedFile(scratch("")), Contains("not a regular file"));

  write_file_atomic(path, std::string_view(""));
  const MappedFile empty(path);
  CHECK(empty.size() == 0);
  CHECK_THROWS_AS(empty.bytes(0, 1), FormatError);
}

// nlohmann raises out_of_range, not parse_error, for a number beyond the range
// of double. fuzz_jsonl found this in parse_jsonl, and the same input crashed
// the safetensors header and index readers.
TEST_CASE("safetensors header number overflow", "[safetensors]") {
  const auto shape = write_raw("overflow_shape.safetensors", R"({"a": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}})", 4);
  CHECK_THROWS_AS(SafetensorsFile::open(shape), FormatError);
  CHECK_THAT(open_error(shape), Contains("not valid JSON") && Contains("number overflow parsing '1e999'"));

  const auto metadata = write_raw("overflow_metadata.safetensors", R"({"__metadata__": {"x": 1e999}})", 0);
  CHECK_THAT(open_error(metadata), Contains("number overflow parsing '1e999'"));

  const auto folder = scratch("overflow_index");
  std::filesystem::create_directories(folder);
  write_file_atomic(folder / "model.safetensors.index.json", R"({"weight_map": {}, "metadata": {"total_size": 1e999}})");
  CHECK_THROWS_AS(SafetensorsFolder::open(folder), FormatError);
  CHECK_THROWS_WITH(SafetensorsFolder::open(folder), Contains("model.safetensors.index.json: not valid JSON"));
}
