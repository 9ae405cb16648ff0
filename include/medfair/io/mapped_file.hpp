#pragma once
// Read-only memory map of a whole file, the base of the GGUF and safetensors
// readers. Every access goes through bytes(), which checks the range.
// NOTE: another process that truncates the file while it is mapped makes later
// reads fail with SIGBUS; the readers assume model files do not change while open.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace medfair::io {

class MappedFile {
 public:
  /// Maps `path` read-only. Throws IOError when the file cannot be opened,
  /// is not a regular file, or cannot be mapped. An empty file maps to size 0.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// File size in bytes.
  std::uint64_t size() const { return size_; }
  /// Start of the mapping (nullptr for an empty file).
  const std::byte* data() const { return data_; }

  /// Returns bytes [offset, offset + length). Throws FormatError naming the
  /// file, the offset, the length and the file size when the range passes the
  /// end of the file (overflow-safe).
  std::span<const std::byte> bytes(std::uint64_t offset, std::uint64_t length) const;

 private:
  void release() noexcept;

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace medfair::io
