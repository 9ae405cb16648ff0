#pragma once
// Builds GGUF files byte by byte for the reader tests, including files that
// break the format on purpose. Layout: ggml's docs/gguf.md.

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace medfair::test {

class GGUFBuilder {
 public:
  std::vector<unsigned char> bytes;

  GGUFBuilder& raw(const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    bytes.insert(bytes.end(), p, p + size);
    return *this;
  }
  GGUFBuilder& u8(std::uint8_t v) { return raw(&v, 1); }
  GGUFBuilder& u32(std::uint32_t v) { return raw(&v, 4); }
  GGUFBuilder& u64(std::uint64_t v) { return raw(&v, 8); }
  GGUFBuilder& f32(float v) { return raw(&v, 4); }
  GGUFBuilder& str(std::string_view s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }

  /// Magic, version and the two counts.
  GGUFBuilder& header(std::uint64_t tensor_count, std::uint64_t key_count, std::uint32_t version = 3) {
    raw("GGUF", 4);
    u32(version);
    u64(tensor_count);
    return u64(key_count);
  }
  GGUFBuilder& kv_u32(std::string_view key, std::uint32_t v) {
    str(key);
    u32(4);
    return u32(v);
  }
  GGUFBuilder& kv_string(std::string_view key, std::string_view v) {
    str(key);
    u32(8);
    return str(v);
  }
  GGUFBuilder& tensor_info(std::string_view name, const std::vector<std::uint64_t>& dims, std::uint32_t type,
                           std::uint64_t offset) {
    str(name);
    u32(static_cast<std::uint32_t>(dims.size()));
    for (const auto d : dims) u64(d);
    u32(type);
    return u64(offset);
  }
  GGUFBuilder& pad(std::size_t alignment = 32) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
    return *this;
  }

  std::filesystem::path write(const std::filesystem::path& path) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
};

}  // namespace medfair::test
