#include "medfair/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "medfair/error.hpp"

namespace medfair::io {

namespace {

std::string system_error_text() { return std::strerror(errno); }

// Writes all of `bytes`, retrying short writes and EINTR.
bool write_all(int fd, const std::byte* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
  return true;
}

}  // namespace

void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::filesystem::path folder = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  // mkstemp needs a writable template ending in XXXXXX; the leading dot keeps
  // the partial file out of globs such as *.safetensors.
  std::string temp_leaf = ".";
  temp_leaf += path.filename().string();
  temp_leaf += ".tmp.XXXXXX";
  std::string temp_name = (folder / temp_leaf).string();
  const int fd = ::mkstemp(temp_name.data());
  if (fd < 0) {
    throw IOError(fmt::format("cannot create a temporary file next to {}: {}; check that the folder exists and is "
                              "writable",
                              path.string(), system_error_text()));
  }

  auto fail = [&](const char* step) {
    const std::string reason = system_error_text();
    ::close(fd);
    ::unlink(temp_name.c_str());
    throw IOError(fmt::format("cannot write {}: {} failed: {}", path.string(), step, reason));
  };
  if (!write_all(fd, bytes.data(), bytes.size())) fail("write");
  if (::fsync(fd) != 0) fail("fsync");
  // mkstemp creates the file with mode 0600. Model files are meant to be
  // shared, so give it 0644. Reading the umask would need umask(), which
  // changes it process-wide and races with other threads.
  if (::fchmod(fd, 0644) != 0) fail("fchmod");
  if (::close(fd) != 0) {
    const std::string reason = system_error_text();
    ::unlink(temp_name.c_str());
    throw IOError(fmt::format("cannot write {}: close failed: {}", path.string(), reason));
  }
  if (::rename(temp_name.c_str(), path.c_str()) != 0) {
    const std::string reason = system_error_text();
    ::unlink(temp_name.c_str());
    throw IOError(fmt::format("cannot replace {}: rename failed: {}", path.string(), reason));
  }

  // Persist the rename itself.
  const int dir_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    throw IOError(fmt::format("wrote {} but cannot open its folder to fsync it: {}", path.string(), system_error_text()));
  }
  const int rc = ::fsync(dir_fd);
  const std::string reason = rc != 0 ? system_error_text() : std::string();
  ::close(dir_fd);
  if (rc != 0) throw IOError(fmt::format("wrote {} but fsync of its folder failed: {}", path.string(), reason));
}

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  write_file_atomic(path, std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
}

void append_file_durable(const std::filesystem::path& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw IOError(fmt::format("cannot open {} for appending: {}", path.string(), system_error_text()));
  if (!write_all(fd, reinterpret_cast<const std::byte*>(text.data()), text.size())) {
    const std::string reason = system_error_text();
    ::close(fd);
    throw IOError(fmt::format("cannot append to {}: {}", path.string(), reason));
  }
  if (::fsync(fd) != 0) {
    const std::string reason = system_error_text();
    ::close(fd);
    throw IOError(fmt::format("appended to {} but fsync failed: {}", path.string(), reason));
  }
  ::close(fd);
}

}  // namespace medfair::io
