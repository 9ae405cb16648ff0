#pragma once
// Crash-safe file replacement: readers see either the old file or the complete
// new one, never a partial write.

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

}  // namespace medfair::io
