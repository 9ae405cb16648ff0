#pragma once
// Reader for GGUF model files, versions 2 and 3, little-endian. Layout: ggml's
// docs/gguf.md. The file is memory-mapped; metadata is parsed eagerly and
// tensor data is read on demand, so opening a file costs little beyond its
// metadata. Every count and length is checked against the bytes left in the
// file before anything is allocated.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "medfair/io/ggml_types.hpp"
#include "medfair/io/mapped_file.hpp"

namespace medfair::io {

/// Metadata value types, numbered as in the file.
enum class GGUFValueType : std::uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

/// Returns the lower-case name of a value type ("uint32", "string", ...).
std::string_view gguf_value_type_name(GGUFValueType type);

struct GGUFValue;

/// An array value: all items have `element_type` (which may be ARRAY).
struct GGUFArray {
  GGUFValueType element_type = GGUFValueType::UINT8;
  std::vector<GGUFValue> items;
};

/// One metadata value. The variant's alternative index equals the numeric
/// GGUFValueType, so `type()` is `static_cast<GGUFValueType>(value.index())`.
struct GGUFValue {
  using Storage = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t,
                               float, bool, std::string, GGUFArray, std::uint64_t, std::int64_t, double>;
  Storage value;

  GGUFValueType type() const { return static_cast<GGUFValueType>(value.index()); }
  /// A readable type such as "uint32" or "array[string]".
  std::string type_name() const;
};

/// A metadata entry, in file order.
struct GGUFKeyValue {
  std::string key;
  GGUFValue value;
};

/// One tensor's header entry, validated at open().
struct GGUFTensorInfo {
  std::string name;
  std::vector<std::int64_t> dims;  ///< ggml order: dims[0] (ne[0]) varies fastest
  GGMLType type = GGMLType::F32;
  std::uint64_t offset = 0;       ///< offset inside the data section, as stored
  std::uint64_t file_offset = 0;  ///< absolute offset of the first byte in the file
  std::uint64_t n_elements = 0;   ///< product of dims
  std::uint64_t n_bytes = 0;      ///< n_elements / block_size * type_size
};

/// Caps on the parsed header, on top of the rule that every declared length
/// must fit in the bytes left in the file.
struct GGUFLimits {
  std::uint64_t max_string_bytes = std::uint64_t{1} << 30;  ///< longest string; default 1 GiB
  std::uint64_t max_array_length = std::uint64_t{1} << 30;  ///< most items in one array; default 2^30
  std::uint64_t max_metadata_keys = 1'000'000;              ///< most metadata entries; default 10^6
  std::uint64_t max_tensors = 1'000'000;                    ///< most tensors; default 10^6
  std::uint32_t max_array_depth = 8;                        ///< deepest nesting of arrays in arrays; default 8
};

class GGUFFile {
 public:
  /// Opens and validates `path`. Throws IOError when the file cannot be read,
  /// FormatError when its bytes break the format or `limits` (the message
  /// names the file, the offset and the field), and ModelError for a tensor
  /// type that ggml does not define.
  static GGUFFile open(const std::filesystem::path& path, GGUFLimits limits = {});

  const std::filesystem::path& path() const { return file_.path(); }
  std::uint32_t version() const { return version_; }
  /// Data alignment from general.alignment (default 32).
  std::uint64_t alignment() const { return alignment_; }
  /// Absolute offset of the tensor data section.
  std::uint64_t data_offset() const { return data_offset_; }

  // ---- metadata ----

  const std::vector<GGUFKeyValue>& metadata() const { return metadata_; }
  /// Returns the value of `key`, or nullptr when it is absent.
  const GGUFValue* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  // The getters throw ModelError naming the file, the key, the expected type
  // and the found type when the key is missing or has another type. The
  // *_opt variants return nullopt for a missing key and throw ModelError for a
  // wrong type.

  /// Any integer type (uint8..int64); uint64 values above INT64_MAX are rejected.
  std::int64_t get_int(std::string_view key) const;
  std::optional<std::int64_t> get_int_opt(std::string_view key) const;
  /// float32 or float64 (float32 widens exactly).
  double get_float(std::string_view key) const;
  std::optional<double> get_float_opt(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::optional<bool> get_bool_opt(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::optional<std::string> get_string_opt(std::string_view key) const;
  /// array[string].
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::optional<std::vector<std::string>> get_string_array_opt(std::string_view key) const;
  /// array of any integer type.
  std::vector<std::int64_t> get_int_array(std::string_view key) const;
  std::optional<std::vector<std::int64_t>> get_int_array_opt(std::string_view key) const;
  /// array[float32] or array[float64].
  std::vector<double> get_float_array(std::string_view key) const;
  std::optional<std::vector<double>> get_float_array_opt(std::string_view key) const;
  /// Number of items of an array value, without copying it.
  std::uint64_t get_array_length(std::string_view key) const;

  // ---- tensors ----

  /// Tensors in file order.
  const std::vector<GGUFTensorInfo>& tensors() const { return tensors_; }
  /// Returns the tensor named `name`, or nullptr.
  const GGUFTensorInfo* find_tensor(std::string_view name) const;
  /// Returns the tensor named `name`; throws ModelError naming it and the file.
  const GGUFTensorInfo& tensor(std::string_view name) const;

  /// Returns the PyTorch shape of the same row-major data (dims reversed).
  static std::vector<std::int64_t> torch_shape(const GGUFTensorInfo& info);
  /// The tensor's raw bytes inside the mapping (valid while this file lives).
  std::span<const std::byte> tensor_bytes(const GGUFTensorInfo& info) const;
  /// Expands the tensor into `out`, which must hold info.n_elements floats.
  /// Throws ModelError naming the tensor and its type, and listing the
  /// supported types, when the type cannot be dequantized.
  void dequantize(const GGUFTensorInfo& info, float* out) const;
  std::vector<float> dequantize(const GGUFTensorInfo& info) const;

 private:
  explicit GGUFFile(MappedFile file) : file_(std::move(file)) {}
  friend class GGUFParser;

  MappedFile file_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::vector<GGUFKeyValue> metadata_;
  std::unordered_map<std::string, std::size_t> key_index_;
  std::vector<GGUFTensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> tensor_index_;
};

}  // namespace medfair::io
