#pragma once
// Reader and writer for safetensors files (layout: huggingface/safetensors
// docs, "Format"): an 8-byte little-endian header length N, N bytes of JSON
// mapping tensor names to {dtype, shape, data_offsets} plus an optional
// "__metadata__" string map, then the data section. Offsets are relative to
// the start of the data section.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "medfair/io/mapped_file.hpp"

namespace medfair::io {

enum class SafetensorsDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

/// The dtype's name in the header ("F32", "BF16", ...).
std::string_view safetensors_dtype_name(SafetensorsDType dtype);
/// Bytes per element.
std::size_t safetensors_dtype_size(SafetensorsDType dtype);
/// Parses a header dtype name; nullopt for names this reader does not support.
std::optional<SafetensorsDType> parse_safetensors_dtype(std::string_view name);

struct SafetensorsTensorInfo {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::F32;
  std::vector<std::int64_t> shape;  ///< row-major, as PyTorch
  std::uint64_t begin = 0;          ///< data_offsets[0], relative to the data section
  std::uint64_t end = 0;            ///< data_offsets[1]
  std::uint64_t n_elements = 0;     ///< product of shape (1 for a scalar)
};

struct SafetensorsLimits {
  std::uint64_t max_header_bytes = std::uint64_t{100} << 20;  ///< JSON header cap; default 100 MiB (the Rust crate's limit)
};

class SafetensorsFile {
 public:
  /// Opens and validates `path`: header length within the file and the cap,
  /// valid JSON, known dtypes, shapes, and data_offsets that lie inside the
  /// data section, match dtype size x elements and do not overlap. Throws
  /// IOError when the file cannot be read and FormatError (naming the file and
  /// the tensor) otherwise.
  static SafetensorsFile open(const std::filesystem::path& path, SafetensorsLimits limits = {});

  const std::filesystem::path& path() const { return file_.path(); }
  /// The "__metadata__" entries (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Tensors sorted by name.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  /// Absolute file offset of the data section (8 + header length).
  std::uint64_t data_offset() const { return data_offset_; }

  const SafetensorsTensorInfo* find_tensor(std::string_view name) const;
  /// Throws ModelError naming the tensor and the file when it is absent.
  const SafetensorsTensorInfo& tensor(std::string_view name) const;
  /// The tensor's raw little-endian bytes (valid while this file lives).
  std::span<const std::byte> tensor_bytes(const SafetensorsTensorInfo& info) const;
  /// Converts an F32, F16, BF16 or F64 tensor to fp32 into `out` (n_elements
  /// floats; F64 rounds to nearest). Throws ModelError for other dtypes.
  void to_float(const SafetensorsTensorInfo& info, float* out) const;
  std::vector<float> to_float(const SafetensorsTensorInfo& info) const;

 private:
  explicit SafetensorsFile(MappedFile file) : file_(std::move(file)) {}

  MappedFile file_;
  std::uint64_t data_offset_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
};

/// A Hugging Face model folder's weights: `model.safetensors`, or the shards
/// listed in `model.safetensors.index.json` ("weight_map": name -> shard file),
/// behind one name -> tensor lookup.
class SafetensorsFolder {
 public:
  /// A tensor and the shard file that contains it.
  struct Entry {
    const SafetensorsFile* file;
    const SafetensorsTensorInfo* info;
  };

  /// Opens the folder. Prefers model.safetensors.index.json when present.
  /// Throws IOError when neither file exists (naming both) or a shard named in
  /// the index is missing, and FormatError when the index is invalid or a
  /// shard does not hold a tensor the index assigns to it.
  static SafetensorsFolder open(const std::filesystem::path& folder, SafetensorsLimits limits = {});

  const std::filesystem::path& folder() const { return folder_; }
  /// The opened files, in shard-name order.
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  /// All tensor names, sorted.
  std::vector<std::string> tensor_names() const;
  std::optional<Entry> find(std::string_view name) const;
  /// Throws ModelError naming the tensor and the folder when it is absent.
  Entry tensor(std::string_view name) const;
  /// Converts tensor `name` to fp32 (see SafetensorsFile::to_float).
  std::vector<float> to_float(std::string_view name) const;

 private:
  std::filesystem::path folder_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, Entry> index_;
};

/// A tensor to write: raw little-endian bytes of `dtype`, row-major `shape`.
struct SafetensorsTensorData {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;
};

/// Serializes tensors in the layout the Python safetensors package writes:
/// names sorted, data in name order without gaps, "__metadata__" first when
/// non-empty, header padded with spaces to a multiple of 8 bytes. Throws
/// ConfigError for duplicate or empty names, the name "__metadata__", negative
/// dimensions, or data whose size does not match dtype x shape.
std::vector<std::byte> serialize_safetensors(std::span<const SafetensorsTensorData> tensors,
                                             const std::map<std::string, std::string>& metadata = {});

/// Writes serialize_safetensors(...) to `path` with write_file_atomic().
void write_safetensors(const std::filesystem::path& path, std::span<const SafetensorsTensorData> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace medfair::io
