#pragma once
// The medfair exception hierarchy. Every error a caller can cause (a bad file,
// an invalid option, a failing endpoint) is thrown as one of these, with a
// message that names the value at fault and what to do about it. The Python
// binding raises exceptions of the same names, all derived from medfair.Error.

#include <stdexcept>
#include <string>

namespace medfair {

/// Base class of every exception medfair throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// A file could not be opened, read or written (missing, unreadable, disk full).
class IOError : public Error {
 public:
  using Error::Error;
};

/// A file's bytes do not follow its format (GGUF, safetensors, JSON, CSV, ...).
class FormatError : public Error {
 public:
  using Error::Error;
};

/// An option or configuration value is invalid or inconsistent.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// Input data parses but its content is unusable (a missing column, an empty
/// template, an unknown template slot, an option list that does not parse).
class DataError : public Error {
 public:
  using Error::Error;
};

/// Model weights or metadata do not match what the architecture needs
/// (unknown architecture, missing tensor, shape mismatch, unsupported type).
class ModelError : public Error {
 public:
  using Error::Error;
};

/// An HTTP endpoint failed, timed out or returned an unusable response.
class EndpointError : public Error {
 public:
  using Error::Error;
};

}  // namespace medfair
