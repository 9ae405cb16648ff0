#include "medfair/io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "medfair/error.hpp"

namespace medfair::io {

namespace {

// Closes the descriptor when the constructor leaves, mapped or not; the
// mapping stays valid after close.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw IOError(fmt::format("cannot open {}: {}; check that the file exists and is readable", path.string(),
                              std::strerror(errno)));
  }
  FdGuard guard{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    throw IOError(fmt::format("cannot stat {}: {}", path.string(), std::strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) {
    throw IOError(fmt::format("cannot map {}: not a regular file", path.string()));
  }
  size_ = static_cast<std::uint64_t>(info.st_size);
  if (size_ == 0) return;  // mmap rejects length 0; an empty file has no bytes to read
  void* address = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (address == MAP_FAILED) {
    throw IOError(fmt::format("cannot memory-map {} ({} bytes): {}", path.string(), size_, std::strerror(errno)));
  }
  data_ = static_cast<const std::byte*>(address);
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedFile::release() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

std::span<const std::byte> MappedFile::bytes(std::uint64_t offset, std::uint64_t length) const {
  if (offset > size_ || length > size_ - offset) {
    throw FormatError(fmt::format("{}: truncated or corrupt file: a read of {} bytes at offset {} passes the end of "
                                  "the file ({} bytes)",
                                  path_.string(), length, offset, size_));
  }
  if (length == 0) return {};
  return {data_ + offset, static_cast<std::size_t>(length)};
}

}  // namespace medfair::io
