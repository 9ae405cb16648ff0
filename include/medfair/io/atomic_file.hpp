#pragma once
// Crash-safe file writes: atomic replacement, where readers see either the old
// file or the complete new one, and durable appends.

#include <cstddef>
#include <filesystem>
#include <span>
#include <string_view>

namespace medfair::io {

/// Writes `bytes` to `path` atomically: writes a temporary file in the same
/// folder, fsyncs it, renames it over `path` and fsyncs the folder. The folder
/// must exist. Throws IOError naming the path and the system error; the
/// temporary file is removed on failure.
void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes);

/// Same as above for text or other byte strings.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

/// Appends `text` to `path` (created with mode 0644 if missing) with one
/// O_APPEND write and an fsync before returning. When `text` is whole lines,
/// a crash leaves at most one torn line at the end of the file. Throws
/// IOError naming the path and the system error.
void append_file_durable(const std::filesystem::path& path, std::string_view text);

}  // namespace medfair::io
