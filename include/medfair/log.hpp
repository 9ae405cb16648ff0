#pragma once
// Leveled logging through a pluggable sink. medfair itself never writes to the
// terminal: every message goes to the sink, which by default writes warnings
// and errors to stderr. The Python binding installs a sink that forwards to
// Python's logging module under the logger name "medfair".

#include <functional>
#include <string>
#include <string_view>

namespace medfair::log {

enum class Level { debug = 10, info = 20, warning = 30, error = 40, off = 100 };

/// Receives each message at or above the current level. `where` names the
/// function or component that logged it, for example "gguf" or "CausalLM::load".
using Sink = std::function<void(Level level, std::string_view where, std::string_view message)>;

/// Replaces the sink; an empty function restores the default stderr sink.
/// Returns the previous sink.
Sink set_sink(Sink sink);

/// Sets the minimum level passed to the sink (default: warning).
void set_level(Level level);
Level level();

/// Sends a message to the sink when `level` is enabled. Thread-safe.
void write(Level level, std::string_view where, std::string_view message);

inline void debug(std::string_view where, std::string_view message) { write(Level::debug, where, message); }
inline void info(std::string_view where, std::string_view message) { write(Level::info, where, message); }
inline void warning(std::string_view where, std::string_view message) { write(Level::warning, where, message); }
inline void error(std::string_view where, std::string_view message) { write(Level::error, where, message); }

/// Logs a warning the first time `key` is seen in this process and drops later
/// repeats, for fallbacks that would otherwise warn once per prompt.
void warning_once(std::string_view key, std::string_view where, std::string_view message);

/// Returns the lower-case name of a level ("debug", "info", ...).
std::string_view level_name(Level level);

}  // namespace medfair::log
