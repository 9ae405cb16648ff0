// GGUF layout (ggml's docs/gguf.md): magic "GGUF", u32 version, u64 tensor
// count, u64 metadata count, the metadata entries, the tensor infos, padding to
// general.alignment, then the tensor data. Strings are a u64 length followed by
// UTF-8 bytes without a terminator.

#include "medfair/io/gguf.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "medfair/error.hpp"
#include "medfair/io/dequantize.hpp"

namespace medfair::io {

namespace {

constexpr std::uint64_t kDefaultAlignment = 32;
constexpr std::uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// Smallest encoded sizes, used to bound declared counts by the bytes left
// before anything is allocated.
constexpr std::uint64_t kMinKeyValueBytes = 8 + 4 + 1;        // empty key, type, 1-byte value
constexpr std::uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims 0, type, offset

std::uint64_t min_value_bytes(GGUFValueType type) {
  switch (type) {
    case GGUFValueType::UINT8:
    case GGUFValueType::INT8:
    case GGUFValueType::BOOL: return 1;
    case GGUFValueType::UINT16:
    case GGUFValueType::INT16: return 2;
    case GGUFValueType::UINT32:
    case GGUFValueType::INT32:
    case GGUFValueType::FLOAT32: return 4;
    case GGUFValueType::UINT64:
    case GGUFValueType::INT64:
    case GGUFValueType::FLOAT64:
    case GGUFValueType::STRING: return 8;
    case GGUFValueType::ARRAY: return 4 + 8;
  }
  return 1;
}

bool is_known_value_type(std::uint32_t raw) { return raw <= static_cast<std::uint32_t>(GGUFValueType::FLOAT64); }

bool is_integer(GGUFValueType type) {
  switch (type) {
    case GGUFValueType::UINT8:
    case GGUFValueType::INT8:
    case GGUFValueType::UINT16:
    case GGUFValueType::INT16:
    case GGUFValueType::UINT32:
    case GGUFValueType::INT32:
    case GGUFValueType::UINT64:
    case GGUFValueType::INT64: return true;
    default: return false;
  }
}

}  // namespace

std::string_view gguf_value_type_name(GGUFValueType type) {
  switch (type) {
    case GGUFValueType::UINT8: return "uint8";
    case GGUFValueType::INT8: return "int8";
    case GGUFValueType::UINT16: return "uint16";
    case GGUFValueType::INT16: return "int16";
    case GGUFValueType::UINT32: return "uint32";
    case GGUFValueType::INT32: return "int32";
    case GGUFValueType::FLOAT32: return "float32";
    case GGUFValueType::BOOL: return "bool";
    case GGUFValueType::STRING: return "string";
    case GGUFValueType::ARRAY: return "array";
    case GGUFValueType::UINT64: return "uint64";
    case GGUFValueType::INT64: return "int64";
    case GGUFValueType::FLOAT64: return "float64";
  }
  return "unknown";
}

std::string GGUFValue::type_name() const {
  if (const auto* array = std::get_if<GGUFArray>(&value)) {
    if (array->element_type == GGUFValueType::ARRAY && !array->items.empty()) {
      return "array[" + array->items.front().type_name() + "]";
    }
    return "array[" + std::string(gguf_value_type_name(array->element_type)) + "]";
  }
  return std::string(gguf_value_type_name(type()));
}

// Reads the header of one file into a GGUFFile. Every read goes through
// MappedFile::bytes(), so a truncated file raises FormatError, never an
// out-of-bounds read.
class GGUFParser {
 public:
  GGUFParser(GGUFFile& out, const GGUFLimits& limits) : out_(out), file_(out.file_), limits_(limits) {}

  void parse() {
    read_preamble();
    const std::uint64_t tensor_count = read<std::uint64_t>();
    const std::uint64_t key_count = read<std::uint64_t>();
    check_count(key_count, limits_.max_metadata_keys, kMinKeyValueBytes, "metadata key count");
    check_count(tensor_count, limits_.max_tensors, kMinTensorInfoBytes, "tensor count");

    out_.metadata_.reserve(key_count);
    for (std::uint64_t i = 0; i < key_count; ++i) read_key_value();
    read_alignment();

    out_.tensors_.reserve(tensor_count);
    for (std::uint64_t i = 0; i < tensor_count; ++i) read_tensor_info();
    place_tensors();
  }

 private:
  [[noreturn]] void fail(std::uint64_t offset, const std::string& what) const {
    throw FormatError(fmt::format("{}: invalid GGUF file at offset {}: {}", file_.path().string(), offset, what));
  }

  std::uint64_t remaining() const { return file_.size() - pos_; }

  template <typename T>
  T read() {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto span = file_.bytes(pos_, sizeof(T));
    T value;
    std::memcpy(&value, span.data(), sizeof(T));
    pos_ += sizeof(T);
    return value;  // NOTE: assumes a little-endian host, as ggml does.
  }

  // Rejects a declared count that exceeds its cap or cannot fit in the rest of
  // the file at `min_bytes` per item.
  void check_count(std::uint64_t count, std::uint64_t cap, std::uint64_t min_bytes, const char* what) const {
    if (count > cap) {
      fail(pos_, fmt::format("{} {} exceeds the limit of {}", what, count, cap));
    }
    if (count > remaining() / min_bytes) {
      fail(pos_, fmt::format("{} {} cannot fit in the {} bytes left in the file; the file is truncated or corrupt",
                             what, count, remaining()));
    }
  }

  void read_preamble() {
    const auto magic = file_.bytes(0, 4);
    if (std::memcmp(magic.data(), "GGUF", 4) != 0) {
      std::string found;
      for (const std::byte b : magic) {
        const auto c = static_cast<unsigned char>(b);
        found += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
      }
      fail(0, fmt::format("expected the magic \"GGUF\", found \"{}\"; this is not a GGUF file", found));
    }
    pos_ = 4;
    const auto version = read<std::uint32_t>();
    if (version == 2 || version == 3) {
      out_.version_ = version;
      return;
    }
    if (version == 1) {
      fail(4, "GGUF version 1 is not supported (it uses 32-bit counts); convert the model again with a current "
              "llama.cpp to get version 3");
    }
    const std::uint32_t swapped = ((version & 0xFFu) << 24) | ((version & 0xFF00u) << 8) |
                                  ((version >> 8) & 0xFF00u) | (version >> 24);
    if (swapped == 2 || swapped == 3) {
      fail(4, fmt::format("big-endian GGUF version {} is not supported; use a little-endian file", swapped));
    }
    fail(4, fmt::format("unsupported GGUF version {}; supported versions are 2 and 3", version));
  }

  std::string read_string(const char* what) {
    const std::uint64_t start = pos_;
    const auto length = read<std::uint64_t>();
    if (length > limits_.max_string_bytes) {
      fail(start, fmt::format("{} length {} exceeds the limit of {} bytes", what, length, limits_.max_string_bytes));
    }
    if (length > remaining()) {
      fail(start, fmt::format("{} length {} exceeds the {} bytes left in the file; the file is truncated or corrupt",
                              what, length, remaining()));
    }
    const auto span = file_.bytes(pos_, length);
    pos_ += length;
    return std::string(reinterpret_cast<const char*>(span.data()), span.size());
  }

  GGUFValueType read_value_type(const char* what) {
    const std::uint64_t start = pos_;
    const auto raw = read<std::uint32_t>();
    if (!is_known_value_type(raw)) {
      fail(start, fmt::format("unknown {} {}; GGUF defines value types 0 to 12", what, raw));
    }
    return static_cast<GGUFValueType>(raw);
  }

  GGUFValue read_value(GGUFValueType type, std::uint32_t depth) {
    GGUFValue value;
    switch (type) {
      case GGUFValueType::UINT8: value.value = read<std::uint8_t>(); break;
      case GGUFValueType::INT8: value.value = read<std::int8_t>(); break;
      case GGUFValueType::UINT16: value.value = read<std::uint16_t>(); break;
      case GGUFValueType::INT16: value.value = read<std::int16_t>(); break;
      case GGUFValueType::UINT32: value.value = read<std::uint32_t>(); break;
      case GGUFValueType::INT32: value.value = read<std::int32_t>(); break;
      case GGUFValueType::FLOAT32: value.value = read<float>(); break;
      case GGUFValueType::BOOL: {
        const std::uint64_t start = pos_;
        const auto raw = read<std::uint8_t>();
        if (raw > 1) fail(start, fmt::format("bool value {} is neither 0 nor 1", raw));
        value.value = raw == 1;
        break;
      }
      case GGUFValueType::STRING: value.value = read_string("string"); break;
      case GGUFValueType::ARRAY: value.value = read_array(depth + 1); break;
      case GGUFValueType::UINT64: value.value = read<std::uint64_t>(); break;
      case GGUFValueType::INT64: value.value = read<std::int64_t>(); break;
      case GGUFValueType::FLOAT64: value.value = read<double>(); break;
    }
    return value;
  }

  GGUFArray read_array(std::uint32_t depth) {
    const std::uint64_t start = pos_;
    if (depth > limits_.max_array_depth) {
      fail(start, fmt::format("arrays are nested more than {} deep", limits_.max_array_depth));
    }
    GGUFArray array;
    array.element_type = read_value_type("array element type");
    const auto length = read<std::uint64_t>();
    if (length > limits_.max_array_length) {
      fail(start, fmt::format("array length {} exceeds the limit of {}", length, limits_.max_array_length));
    }
    const std::uint64_t item_bytes = min_value_bytes(array.element_type);
    if (length > remaining() / item_bytes) {
      fail(start, fmt::format("array of {} {} values cannot fit in the {} bytes left in the file; the file is "
                              "truncated or corrupt",
                              length, gguf_value_type_name(array.element_type), remaining()));
    }
    array.items.reserve(length);
    for (std::uint64_t i = 0; i < length; ++i) array.items.push_back(read_value(array.element_type, depth));
    return array;
  }

  void read_key_value() {
    const std::uint64_t start = pos_;
    std::string key = read_string("metadata key");
    const GGUFValueType type = read_value_type(("value type of key '" + key + "'").c_str());
    GGUFValue value = read_value(type, 0);
    if (out_.key_index_.count(key) != 0) fail(start, fmt::format("duplicate metadata key '{}'", key));
    out_.key_index_.emplace(key, out_.metadata_.size());
    out_.metadata_.push_back({std::move(key), std::move(value)});
  }

  void read_alignment() {
    const GGUFValue* value = out_.find("general.alignment");
    if (value == nullptr) return;
    const auto* alignment = std::get_if<std::uint32_t>(&value->value);
    if (alignment == nullptr) {
      fail(pos_, fmt::format("general.alignment has type {}, expected uint32", value->type_name()));
    }
    if (*alignment == 0 || (*alignment & (*alignment - 1)) != 0) {
      fail(pos_, fmt::format("general.alignment {} is not a power of two", *alignment));
    }
    out_.alignment_ = *alignment;
  }

  void read_tensor_info() {
    const std::uint64_t start = pos_;
    GGUFTensorInfo info;
    info.name = read_string("tensor name");
    const auto n_dims = read<std::uint32_t>();
    if (n_dims > kMaxDims) {
      fail(start, fmt::format("tensor '{}' has {} dimensions; ggml supports at most {}", info.name, n_dims, kMaxDims));
    }
    info.n_elements = 1;
    bool overflow = false;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = read<std::uint64_t>();
      if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail(start, fmt::format("tensor '{}' dimension {} is {}, which exceeds INT64_MAX", info.name, d, dim));
      }
      info.dims.push_back(static_cast<std::int64_t>(dim));
      if (dim != 0 && info.n_elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / dim) {
        overflow = true;
      }
      info.n_elements *= dim;
    }
    if (overflow) {
      fail(start, fmt::format("tensor '{}' has more than INT64_MAX elements (dims {})", info.name,
                              fmt::join(info.dims, " x ")));
    }

    const std::uint64_t type_offset = pos_;
    const auto raw_type = read<std::uint32_t>();
    const auto traits = ggml_type_traits(raw_type);
    if (!traits) {
      throw ModelError(fmt::format("{}: tensor '{}' at offset {} has unknown ggml type {}; known types: F32, F16, "
                                   "BF16, Q4_0 ... Q8_K, IQ*, TQ*, MXFP4; dequantizable types: {}",
                                   file_.path().string(), info.name, type_offset, raw_type,
                                   dequantizable_type_list()));
    }
    info.type = traits->type;
    const std::int64_t first_dim = info.dims.empty() ? 1 : info.dims[0];
    if (first_dim % traits->block_size != 0) {
      fail(start, fmt::format("tensor '{}' of type {} has {} elements per row (dims {}), not a multiple of the "
                              "block size {}",
                              info.name, traits->name, first_dim, fmt::join(info.dims, " x "), traits->block_size));
    }
    const std::uint64_t n_blocks = info.n_elements / static_cast<std::uint64_t>(traits->block_size);
    const auto type_size = static_cast<std::uint64_t>(traits->type_size);
    if (n_blocks > std::numeric_limits<std::uint64_t>::max() / type_size) {
      fail(start, fmt::format("tensor '{}' byte size overflows 64 bits", info.name));
    }
    info.n_bytes = n_blocks * type_size;
    info.offset = read<std::uint64_t>();

    if (out_.tensor_index_.count(info.name) != 0) fail(start, fmt::format("duplicate tensor name '{}'", info.name));
    out_.tensor_index_.emplace(info.name, out_.tensors_.size());
    out_.tensors_.push_back(std::move(info));
  }

  // Aligns the data section and checks every tensor's byte range against the
  // file size, the alignment and the other tensors.
  void place_tensors() {
    const std::uint64_t alignment = out_.alignment_;
    out_.data_offset_ = (pos_ + alignment - 1) / alignment * alignment;
    if (out_.tensors_.empty()) return;
    if (out_.data_offset_ > file_.size()) {
      fail(pos_, fmt::format("the tensor data section starts at {}, past the end of the file ({} bytes); the file is "
                             "truncated",
                             out_.data_offset_, file_.size()));
    }
    const std::uint64_t data_size = file_.size() - out_.data_offset_;
    for (auto& info : out_.tensors_) {
      if (info.offset % alignment != 0) {
        fail(out_.data_offset_, fmt::format("tensor '{}' data offset {} is not a multiple of the alignment {}",
                                            info.name, info.offset, alignment));
      }
      if (info.offset > data_size || info.n_bytes > data_size - info.offset) {
        fail(out_.data_offset_,
             fmt::format("tensor '{}' data [{}, {} + {}) relative to the data section at {} passes the end of the "
                         "file ({} bytes); the file is truncated or corrupt",
                         info.name, info.offset, info.offset, info.n_bytes, out_.data_offset_, file_.size()));
      }
      info.file_offset = out_.data_offset_ + info.offset;
    }

    std::vector<const GGUFTensorInfo*> by_offset;
    by_offset.reserve(out_.tensors_.size());
    for (const auto& info : out_.tensors_) by_offset.push_back(&info);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GGUFTensorInfo* a, const GGUFTensorInfo* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      const GGUFTensorInfo& previous = *by_offset[i - 1];
      const GGUFTensorInfo& current = *by_offset[i];
      if (current.offset < previous.offset + previous.n_bytes) {
        fail(out_.data_offset_, fmt::format("tensor '{}' data at {} overlaps tensor '{}' at {} ({} bytes)",
                                            current.name, current.offset, previous.name, previous.offset,
                                            previous.n_bytes));
      }
    }
  }

  GGUFFile& out_;
  const MappedFile& file_;
  const GGUFLimits& limits_;
  std::uint64_t pos_ = 0;
};

GGUFFile GGUFFile::open(const std::filesystem::path& path, GGUFLimits limits) {
  GGUFFile file{MappedFile(path)};
  GGUFParser(file, limits).parse();
  return file;
}

// ---- metadata getters ----

namespace {

[[noreturn]] void throw_missing(const std::filesystem::path& path, std::string_view key, std::string_view expected) {
  throw ModelError(fmt::format("{}: metadata key '{}' ({}) is missing; the file is not a complete model of the "
                               "expected architecture",
                               path.string(), key, expected));
}

[[noreturn]] void throw_wrong_type(const std::filesystem::path& path, std::string_view key, std::string_view expected,
                                   const GGUFValue& found) {
  throw ModelError(fmt::format("{}: metadata key '{}' has type {}, expected {}", path.string(), key,
                               found.type_name(), expected));
}

// Converts any integer alternative to int64; nullopt for non-integers and for
// uint64 values above INT64_MAX (reported as out of range by the caller).
std::optional<std::int64_t> integer_of(const GGUFValue& value, bool& out_of_range) {
  out_of_range = false;
  return std::visit(
      [&](const auto& v) -> std::optional<std::int64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            out_of_range = true;
            return std::nullopt;
          }
          return static_cast<std::int64_t>(v);
        } else if constexpr (std::is_integral_v<T>) {
          return static_cast<std::int64_t>(v);
        } else {
          return std::nullopt;
        }
      },
      value.value);
}

std::optional<double> float_of(const GGUFValue& value) {
  if (const auto* f = std::get_if<float>(&value.value)) return static_cast<double>(*f);
  if (const auto* d = std::get_if<double>(&value.value)) return *d;
  return std::nullopt;
}

constexpr std::string_view kIntegerTypes = "an integer type (uint8 ... int64)";
constexpr std::string_view kFloatTypes = "float32 or float64";

}  // namespace

const GGUFValue* GGUFFile::find(std::string_view key) const {
  const auto it = key_index_.find(std::string(key));
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

std::optional<std::int64_t> GGUFFile::get_int_opt(std::string_view key) const {
  const GGUFValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  bool out_of_range = false;
  const auto result = integer_of(*value, out_of_range);
  if (out_of_range) {
    throw ModelError(fmt::format("{}: metadata key '{}' value {} exceeds INT64_MAX", path().string(), key,
                                 std::get<std::uint64_t>(value->value)));
  }
  if (!result) throw_wrong_type(path(), key, kIntegerTypes, *value);
  return result;
}

std::int64_t GGUFFile::get_int(std::string_view key) const {
  const auto result = get_int_opt(key);
  if (!result) throw_missing(path(), key, kIntegerTypes);
  return *result;
}

std::optional<double> GGUFFile::get_float_opt(std::string_view key) const {
  const GGUFValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  const auto result = float_of(*value);
  if (!result) throw_wrong_type(path(), key, kFloatTypes, *value);
  return result;
}

double GGUFFile::get_float(std::string_view key) const {
  const auto result = get_float_opt(key);
  if (!result) throw_missing(path(), key, kFloatTypes);
  return *result;
}

std::optional<bool> GGUFFile::get_bool_opt(std::string_view key) const {
  const GGUFValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  const auto* result = std::get_if<bool>(&value->value);
  if (result == nullptr) throw_wrong_type(path(), key, "bool", *value);
  return *result;
}

bool GGUFFile::get_bool(std::string_view key) const {
  const auto result = get_bool_opt(key);
  if (!result) throw_missing(path(), key, "bool");
  return *result;
}

std::optional<std::string> GGUFFile::get_string_opt(std::string_view key) const {
  const GGUFValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  const auto* result = std::get_if<std::string>(&value->value);
  if (result == nullptr) throw_wrong_type(path(), key, "string", *value);
  return *result;
}

std::string GGUFFile::get_string(std::string_view key) const {
  auto result = get_string_opt(key);
  if (!result) throw_missing(path(), key, "string");
  return std::move(*result);
}

std::optional<std::vector<std::string>> GGUFFile::get_string_array_opt(std::string_view key) const {
  const GGUFValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  const auto* array = std::get_if<GGUFArray>(&value->value);
  if (array == nullptr || array->element_type != GGUFValueType::STRING) {
    throw_wrong_type(path(), key, "array[string]", *value);
  }
  std::vector<std::string> result;
  result.reserve(array->items.size());
  for (const auto& item : array->items) result.push_back(std::get<std::string>(item.value));
  return result;
}

std::vector<std::string> GGUFFile::get_string_array(std::string_view key) const {
  auto result = get_string_array_opt(key);
  if (!result) throw_missing(path(), key, "array[string]");
  return std::move(*result);
}

std::optional<std::vector<std::int64_t>> GGUFFile::get_int_array_opt(std::string_view key) const {
  const GGUFValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  const auto* array = std::get_if<GGUFArray>(&value->value);
  if (array == nullptr || !is_integer(array->element_type)) {
    throw_wrong_type(path(), key, "an array of an integer type", *value);
  }
  std::vector<std::int64_t> result;
  result.reserve(array->items.size());
  for (std::size_t i = 0; i < array->items.size(); ++i) {
    bool out_of_range = false;
    const auto item = integer_of(array->items[i], out_of_range);
    if (!item) {
      throw ModelError(fmt::format("{}: metadata key '{}' item {} exceeds INT64_MAX", path().string(), key, i));
    }
    result.push_back(*item);
  }
  return result;
}

std::vector<std::int64_t> GGUFFile::get_int_array(std::string_view key) const {
  auto result = get_int_array_opt(key);
  if (!result) throw_missing(path(), key, "an array of an integer type");
  return std::move(*result);
}

std::optional<std::vector<double>> GGUFFile::get_float_array_opt(std::string_view key) const {
  const GGUFValue* value = find(key);
  if (value == nullptr) return std::nullopt;
  const auto* array = std::get_if<GGUFArray>(&value->value);
  if (array == nullptr ||
      (array->element_type != GGUFValueType::FLOAT32 && array->element_type != GGUFValueType::FLOAT64)) {
    throw_wrong_type(path(), key, "array[float32] or array[float64]", *value);
  }
  std::vector<double> result;
  result.reserve(array->items.size());
  for (const auto& item : array->items) result.push_back(*float_of(item));
  return result;
}

std::vector<double> GGUFFile::get_float_array(std::string_view key) const {
  auto result = get_float_array_opt(key);
  if (!result) throw_missing(path(), key, "array[float32] or array[float64]");
  return std::move(*result);
}

std::uint64_t GGUFFile::get_array_length(std::string_view key) const {
  const GGUFValue* value = find(key);
  if (value == nullptr) throw_missing(path(), key, "array");
  const auto* array = std::get_if<GGUFArray>(&value->value);
  if (array == nullptr) throw_wrong_type(path(), key, "array", *value);
  return array->items.size();
}

// ---- tensors ----

const GGUFTensorInfo* GGUFFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GGUFTensorInfo& GGUFFile::tensor(std::string_view name) const {
  const GGUFTensorInfo* info = find_tensor(name);
  if (info == nullptr) {
    throw ModelError(fmt::format("{}: tensor '{}' not found ({} tensors in the file); the file does not match the "
                                 "expected architecture",
                                 path().string(), name, tensors_.size()));
  }
  return *info;
}

std::vector<std::int64_t> GGUFFile::torch_shape(const GGUFTensorInfo& info) {
  return {info.dims.rbegin(), info.dims.rend()};
}

std::span<const std::byte> GGUFFile::tensor_bytes(const GGUFTensorInfo& info) const {
  return file_.bytes(info.file_offset, info.n_bytes);
}

void GGUFFile::dequantize(const GGUFTensorInfo& info, float* out) const {
  const GGMLTypeTraits& traits = ggml_type_traits(info.type);
  if (!traits.can_dequantize) {
    throw ModelError(fmt::format("{}: tensor '{}' has type {}, which cannot be converted to fp32; supported types: "
                                 "{}; requantize the model to one of them",
                                 path().string(), info.name, traits.name, dequantizable_type_list()));
  }
  const auto bytes = tensor_bytes(info);
  dequantize_row(info.type, bytes.data(), out, static_cast<std::int64_t>(info.n_elements));
}

std::vector<float> GGUFFile::dequantize(const GGUFTensorInfo& info) const {
  std::vector<float> out(info.n_elements);
  dequantize(info, out.data());
  return out;
}

}  // namespace medfair::io
