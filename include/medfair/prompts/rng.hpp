#pragma once
// A portable random number generator for prompt sampling. The standard
// library's distributions are implementation-defined, so the same seed could
// give different prompts under libstdc++ and libc++; everything here is
// specified bit for bit.

#include <cstdint>
#include <string_view>

namespace medfair::prompts {

/// SplitMix64 (Steele, Lea and Flood, "Fast Splittable Pseudorandom Number
/// Generators", OOPSLA 2014; constants as in Vigna's public-domain
/// splitmix64.c).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed = 0) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  /// A uniform integer in [0, bound) by rejection sampling, so no value is
  /// favored by the modulo. `bound` must be positive.
  std::uint64_t below(std::uint64_t bound) {
    const std::uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    for (;;) {
      std::uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  std::uint64_t state_;
};

/// 64-bit FNV-1a hash of `text`, continuing from `hash`; used to derive
/// per-vignette seeds from strings.
constexpr std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = 0xCBF29CE484222325ULL) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001B3ULL;
  }
  return hash;
}

/// A seed for the stream named `key` under the user's `seed`.
inline std::uint64_t derive_seed(std::uint64_t seed, std::string_view key) {
  SplitMix64 mixer(fnv1a(key) ^ seed);
  return mixer.next();
}

}  // namespace medfair::prompts
