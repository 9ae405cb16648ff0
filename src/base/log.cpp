#include "medfair/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>

namespace medfair::log {
namespace {

void write_to_stderr(Level level, std::string_view where, std::string_view message) {
  std::string line = "medfair ";
  line += level_name(level);
  line += " [";
  line += where;
  line += "]: ";
  line += message;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

struct State {
  std::mutex mutex;
  Sink sink = write_to_stderr;
  std::atomic<int> level{static_cast<int>(Level::warning)};
  std::set<std::string, std::less<>> warned_keys;
};

State& state() {
  static State instance;
  return instance;
}

}  // namespace

Sink set_sink(Sink sink) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  Sink previous = std::move(s.sink);
  s.sink = sink ? std::move(sink) : Sink(write_to_stderr);
  return previous;
}

void set_level(Level new_level) { state().level.store(static_cast<int>(new_level)); }

Level level() { return static_cast<Level>(state().level.load()); }

void write(Level message_level, std::string_view where, std::string_view message) {
  State& s = state();
  if (static_cast<int>(message_level) < s.level.load()) return;
  Sink sink;
  {
    std::lock_guard lock(s.mutex);
    sink = s.sink;
  }
  // The sink runs outside the lock, so a sink that logs again cannot deadlock.
  sink(message_level, where, message);
}

void warning_once(std::string_view key, std::string_view where, std::string_view message) {
  State& s = state();
  {
    std::lock_guard lock(s.mutex);
    if (s.warned_keys.contains(key)) return;
    s.warned_keys.emplace(key);
  }
  write(Level::warning, where, message);
}

std::string_view level_name(Level value) {
  switch (value) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
    case Level::off: return "off";
  }
  return "unknown";
}

}  // namespace medfair::log
