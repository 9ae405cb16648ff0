// safetensors layout: huggingface/safetensors docs ("Format"). The header is
// a JSON object {name: {"dtype", "shape", "data_offsets": [begin, end]}} plus
// an optional "__metadata__" map of strings; offsets are relative to the byte
// after the header.

#include "medfair/io/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "medfair/error.hpp"
#include "medfair/io/atomic_file.hpp"
#include "medfair/io/half.hpp"

namespace medfair::io {

namespace {

struct DTypeEntry {
  SafetensorsDType dtype;
  std::string_view name;
  std::size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {SafetensorsDType::F64, "F64", 8}, {SafetensorsDType::F32, "F32", 4}, {SafetensorsDType::F16, "F16", 2},
    {SafetensorsDType::BF16, "BF16", 2}, {SafetensorsDType::I64, "I64", 8}, {SafetensorsDType::I32, "I32", 4},
    {SafetensorsDType::I16, "I16", 2}, {SafetensorsDType::I8, "I8", 1}, {SafetensorsDType::U8, "U8", 1},
    {SafetensorsDType::BOOL, "BOOL", 1},
};

std::string supported_dtype_list() {
  std::string list;
  for (const auto& entry : kDTypes) {
    if (!list.empty()) list += ", ";
    list += entry.name;
  }
  return list;
}

// A valid header nests objects and arrays three levels deep at most. Rejecting deeper nesting
// before parsing keeps a hostile header from building a huge parser stack.
bool nesting_within(std::string_view json, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : json) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

// Multiplies non-negative dims; false on overflow past INT64_MAX.
bool checked_element_count(const std::vector<std::int64_t>& shape, std::uint64_t& count) {
  count = 1;
  for (const std::int64_t dim : shape) {
    const auto d = static_cast<std::uint64_t>(dim);
    if (d != 0 && count > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / d) return false;
    count *= d;
  }
  return true;
}

// Parses the header text into `tensors` and `metadata`, validating every field
// except the byte ranges.
class HeaderParser {
 public:
  HeaderParser(const std::filesystem::path& path, std::uint64_t data_size) : path_(path), data_size_(data_size) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(fmt::format("{}: invalid safetensors header: {}", path_.string(), what));
  }

  void parse(std::string_view text, std::vector<SafetensorsTensorInfo>& tensors,
             std::map<std::string, std::string>& metadata) const {
    if (!nesting_within(text, 3)) fail("JSON nested deeper than the format allows (3 levels)");
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::parse_error& e) {
      fail(fmt::format("not valid JSON ({})", e.what()));
    } catch (const nlohmann::json::out_of_range& e) {
      // A number beyond the range of double (1e999) raises out_of_range, not parse_error.
      fail(fmt::format("not valid JSON ({})", e.what()));
    }
    if (!header.is_object()) fail(fmt::format("expected a JSON object, found {}", header.type_name()));

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        parse_metadata(entry, metadata);
      } else {
        tensors.push_back(parse_tensor(name, entry));
      }
    }
  }

 private:
  void parse_metadata(const nlohmann::json& entry, std::map<std::string, std::string>& metadata) const {
    if (!entry.is_object()) fail(fmt::format("__metadata__ must be an object of strings, found {}", entry.type_name()));
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string()) {
        fail(fmt::format("__metadata__ entry '{}' must be a string, found {}", key, value.type_name()));
      }
      metadata.emplace(key, value.get<std::string>());
    }
  }

  SafetensorsTensorInfo parse_tensor(const std::string& name, const nlohmann::json& entry) const {
    SafetensorsTensorInfo info;
    info.name = name;
    if (!entry.is_object()) fail(fmt::format("tensor '{}' must be an object, found {}", name, entry.type_name()));

    const auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) fail(fmt::format("tensor '{}' has no string \"dtype\"", name));
    const auto parsed = parse_safetensors_dtype(dtype->get<std::string>());
    if (!parsed) {
      fail(fmt::format("tensor '{}' has unsupported dtype \"{}\"; supported dtypes: {}", name,
                       dtype->get<std::string>(), supported_dtype_list()));
    }
    info.dtype = *parsed;

    const auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array()) fail(fmt::format("tensor '{}' has no \"shape\" array", name));
    for (const auto& dim : *shape) {
      if (!dim.is_number_unsigned() ||
          dim.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail(fmt::format("tensor '{}' shape {} must hold non-negative integers", name, shape->dump()));
      }
      info.shape.push_back(dim.get<std::int64_t>());
    }
    if (!checked_element_count(info.shape, info.n_elements)) {
      fail(fmt::format("tensor '{}' shape {} has more than INT64_MAX elements", name, shape->dump()));
    }

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
      fail(fmt::format("tensor '{}' needs \"data_offsets\": [begin, end] with non-negative integers", name));
    }
    info.begin = (*offsets)[0].get<std::uint64_t>();
    info.end = (*offsets)[1].get<std::uint64_t>();
    if (info.begin > info.end) {
      fail(fmt::format("tensor '{}' data_offsets [{}, {}] end before they begin", name, info.begin, info.end));
    }
    if (info.end > data_size_) {
      fail(fmt::format("tensor '{}' data_offsets [{}, {}] pass the end of the data section ({} bytes); the file "
                       "is truncated or corrupt",
                       name, info.begin, info.end, data_size_));
    }
    const std::size_t element_size = safetensors_dtype_size(info.dtype);
    const bool too_large = info.n_elements > std::numeric_limits<std::uint64_t>::max() / element_size;
    if (too_large || info.end - info.begin != info.n_elements * element_size) {
      const std::string needed = too_large ? "more than 2^64" : std::to_string(info.n_elements * element_size);
      fail(fmt::format("tensor '{}' data_offsets [{}, {}] span {} bytes, but dtype {} with shape {} needs {} bytes",
                       name, info.begin, info.end, info.end - info.begin, safetensors_dtype_name(info.dtype),
                       shape->dump(), needed));
    }
    return info;
  }

  const std::filesystem::path& path_;
  std::uint64_t data_size_;
};

}  // namespace

std::string_view safetensors_dtype_name(SafetensorsDType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry.name;
  }
  return "unknown";
}

std::size_t safetensors_dtype_size(SafetensorsDType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry.size;
  }
  return 0;
}

std::optional<SafetensorsDType> parse_safetensors_dtype(std::string_view name) {
  for (const auto& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

// ---- SafetensorsFile ----

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path, SafetensorsLimits limits) {
  SafetensorsFile file{MappedFile(path)};
  const MappedFile& mapped = file.file_;
  if (mapped.size() < 8) {
    throw FormatError(fmt::format("{}: invalid safetensors file: it has {} bytes, fewer than the 8-byte header "
                                  "length",
                                  path.string(), mapped.size()));
  }
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, mapped.bytes(0, 8).data(), 8);  // NOTE: assumes a little-endian host
  if (header_length > limits.max_header_bytes) {
    throw FormatError(fmt::format("{}: invalid safetensors file: header length {} exceeds the limit of {} bytes",
                                  path.string(), header_length, limits.max_header_bytes));
  }
  if (header_length > mapped.size() - 8) {
    throw FormatError(fmt::format("{}: invalid safetensors file: header length {} passes the end of the file ({} "
                                  "bytes); the file is truncated or not a safetensors file",
                                  path.string(), header_length, mapped.size()));
  }
  file.data_offset_ = 8 + header_length;
  const auto header_bytes = mapped.bytes(8, header_length);
  const std::string_view text(reinterpret_cast<const char*>(header_bytes.data()), header_bytes.size());

  HeaderParser(path, mapped.size() - file.data_offset_).parse(text, file.tensors_, file.metadata_);

  // Byte ranges must not overlap (zero-byte tensors included).
  std::vector<const SafetensorsTensorInfo*> by_offset;
  by_offset.reserve(file.tensors_.size());
  for (const auto& info : file.tensors_) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto& previous = *by_offset[i - 1];
    const auto& current = *by_offset[i];
    if (current.begin < previous.end) {
      throw FormatError(fmt::format("{}: invalid safetensors header: tensor '{}' data_offsets [{}, {}] overlap "
                                    "tensor '{}' [{}, {}]",
                                    path.string(), current.name, current.begin, current.end, previous.name,
                                    previous.begin, previous.end));
    }
  }

  std::sort(file.tensors_.begin(), file.tensors_.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (std::size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
  return file;
}

const SafetensorsTensorInfo* SafetensorsFile::find_tensor(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const SafetensorsTensorInfo& SafetensorsFile::tensor(std::string_view name) const {
  const auto* info = find_tensor(name);
  if (info == nullptr) {
    throw ModelError(fmt::format("{}: tensor '{}' not found ({} tensors in the file)", path().string(), name,
                                 tensors_.size()));
  }
  return *info;
}

std::span<const std::byte> SafetensorsFile::tensor_bytes(const SafetensorsTensorInfo& info) const {
  return file_.bytes(data_offset_ + info.begin, info.end - info.begin);
}

void SafetensorsFile::to_float(const SafetensorsTensorInfo& info, float* out) const {
  const auto bytes = tensor_bytes(info);
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::uint64_t n = info.n_elements;
  switch (info.dtype) {
    case SafetensorsDType::F32:
      if (n > 0) std::memcpy(out, data, n * 4);
      return;
    case SafetensorsDType::F16:
    case SafetensorsDType::BF16:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, data + 2 * i, 2);
        out[i] = info.dtype == SafetensorsDType::F16 ? fp16_to_fp32(bits) : bf16_to_fp32(bits);
      }
      return;
    case SafetensorsDType::F64:
      for (std::uint64_t i = 0; i < n; ++i) {
        double value;
        std::memcpy(&value, data + 8 * i, 8);
        out[i] = static_cast<float>(value);
      }
      return;
    default:
      throw ModelError(fmt::format("{}: tensor '{}' has dtype {}, which cannot be converted to fp32; supported: F32, "
                                   "F16, BF16, F64",
                                   path().string(), info.name, safetensors_dtype_name(info.dtype)));
  }
}

std::vector<float> SafetensorsFile::to_float(const SafetensorsTensorInfo& info) const {
  std::vector<float> out(info.n_elements);
  to_float(info, out.data());
  return out;
}

// ---- SafetensorsFolder ----

namespace {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  const MappedFile file(path);
  const auto bytes = file.bytes(0, file.size());
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(fmt::format("{}: not valid JSON ({})", path.string(), e.what()));
  } catch (const nlohmann::json::out_of_range& e) {
    throw FormatError(fmt::format("{}: not valid JSON ({})", path.string(), e.what()));
  }
}

}  // namespace

SafetensorsFolder SafetensorsFolder::open(const std::filesystem::path& folder, SafetensorsLimits limits) {
  SafetensorsFolder result;
  result.folder_ = folder;
  const auto index_path = folder / "model.safetensors.index.json";
  const auto single_path = folder / "model.safetensors";

  if (std::filesystem::exists(index_path)) {
    const nlohmann::json index = read_json_file(index_path);
    const auto map = index.is_object() ? index.find("weight_map") : index.end();
    if (map == index.end() || !map->is_object()) {
      throw FormatError(fmt::format("{}: expected an object with a \"weight_map\" object mapping tensor names to "
                                    "shard files",
                                    index_path.string()));
    }
    std::map<std::string, std::vector<std::string>> shards;  // shard file -> tensor names
    for (const auto& [name, shard] : map->items()) {
      if (!shard.is_string()) {
        throw FormatError(fmt::format("{}: weight_map entry '{}' must be a file name string, found {}",
                                      index_path.string(), name, shard.type_name()));
      }
      const std::filesystem::path shard_path(shard.get<std::string>());
      const bool escapes = shard_path.is_absolute() ||
                           std::any_of(shard_path.begin(), shard_path.end(), [](const auto& part) { return part == ".."; });
      if (shard_path.empty() || escapes) {
        throw FormatError(fmt::format("{}: weight_map entry '{}' names shard \"{}\", which is not a file inside the "
                                      "folder",
                                      index_path.string(), name, shard_path.string()));
      }
      shards[shard.get<std::string>()].push_back(name);
    }
    for (const auto& [shard, names] : shards) {
      const auto shard_path = folder / shard;
      if (!std::filesystem::exists(shard_path)) {
        throw IOError(fmt::format("{}: shard file {} named in the weight_map (for tensor '{}' and {} more) is "
                                  "missing; download the complete model folder",
                                  index_path.string(), shard_path.string(), names.front(), names.size() - 1));
      }
      result.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(shard_path, limits)));
      const SafetensorsFile& file = *result.files_.back();
      for (const auto& name : names) {
        const auto* info = file.find_tensor(name);
        if (info == nullptr) {
          throw FormatError(fmt::format("{}: the weight_map assigns tensor '{}' to {}, which does not contain it",
                                        index_path.string(), name, shard_path.string()));
        }
        result.index_.emplace(name, Entry{&file, info});
      }
    }
    return result;
  }

  if (!std::filesystem::exists(single_path)) {
    std::string hint;
    if (std::filesystem::exists(folder / "pytorch_model.bin")) {
      hint = "; the folder has only pytorch_model.bin, which medfair does not read: convert it to safetensors";
    }
    throw IOError(fmt::format("{}: no model.safetensors or model.safetensors.index.json found{}", folder.string(),
                              hint));
  }
  result.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(single_path, limits)));
  const SafetensorsFile& file = *result.files_.back();
  for (const auto& info : file.tensors()) result.index_.emplace(info.name, Entry{&file, &info});
  return result;
}

std::vector<std::string> SafetensorsFolder::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, entry] : index_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<SafetensorsFolder::Entry> SafetensorsFolder::find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

SafetensorsFolder::Entry SafetensorsFolder::tensor(std::string_view name) const {
  const auto entry = find(name);
  if (!entry) {
    throw ModelError(fmt::format("{}: tensor '{}' not found in the model's safetensors files ({} tensors)",
                                 folder_.string(), name, index_.size()));
  }
  return *entry;
}

std::vector<float> SafetensorsFolder::to_float(std::string_view name) const {
  const Entry entry = tensor(name);
  return entry.file->to_float(*entry.info);
}

// ---- writer ----

std::vector<std::byte> serialize_safetensors(std::span<const SafetensorsTensorData> tensors,
                                             const std::map<std::string, std::string>& metadata) {
  std::vector<const SafetensorsTensorData*> sorted;
  sorted.reserve(tensors.size());
  for (const auto& tensor : tensors) sorted.push_back(&tensor);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->name < b->name; });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const SafetensorsTensorData& tensor = *sorted[i];
    if (tensor.name.empty() || tensor.name == "__metadata__") {
      throw ConfigError(fmt::format("cannot write a safetensors tensor named \"{}\"; use a non-empty name other "
                                    "than __metadata__",
                                    tensor.name));
    }
    if (i > 0 && sorted[i - 1]->name == tensor.name) {
      throw ConfigError(fmt::format("cannot write two safetensors tensors named '{}'", tensor.name));
    }
    if (std::any_of(tensor.shape.begin(), tensor.shape.end(), [](std::int64_t d) { return d < 0; })) {
      throw ConfigError(fmt::format("tensor '{}' has a negative dimension in shape [{}]", tensor.name,
                                    fmt::join(tensor.shape, ", ")));
    }
    std::uint64_t n_elements = 0;
    const std::size_t element_size = safetensors_dtype_size(tensor.dtype);
    if (!checked_element_count(tensor.shape, n_elements) ||
        n_elements > std::numeric_limits<std::uint64_t>::max() / element_size ||
        n_elements * element_size != tensor.data.size()) {
      throw ConfigError(fmt::format("tensor '{}' has {} data bytes, but dtype {} with shape [{}] needs {} x {}",
                                    tensor.name, tensor.data.size(), safetensors_dtype_name(tensor.dtype),
                                    fmt::join(tensor.shape, ", "), n_elements, element_size));
    }
    header[tensor.name] = {{"dtype", std::string(safetensors_dtype_name(tensor.dtype))},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + tensor.data.size()}}};
    offset += tensor.data.size();
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::type_error& e) {
    throw ConfigError(fmt::format("cannot write the safetensors header: {}; tensor names and metadata must be "
                                  "valid UTF-8",
                                  e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the Python package pads to 8 bytes with spaces

  std::vector<std::byte> out(8 + text.size() + offset);
  const std::uint64_t header_length = text.size();
  std::memcpy(out.data(), &header_length, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::byte* cursor = out.data() + 8 + text.size();
  for (const auto* tensor : sorted) {
    if (!tensor->data.empty()) std::memcpy(cursor, tensor->data.data(), tensor->data.size());
    cursor += tensor->data.size();
  }
  return out;
}

void write_safetensors(const std::filesystem::path& path, std::span<const SafetensorsTensorData> tensors,
                       const std::map<std::string, std::string>& metadata) {
  const auto bytes = serialize_safetensors(tensors, metadata);
  write_file_atomic(path, bytes);
}

}  // namespace medfair::io
