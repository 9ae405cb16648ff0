#pragma once
// Helpers shared by the eval layer's sources. They are not part of the public API.

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace medfair::eval::detail {

/// Returns log(sum(exp(values))), computed around the largest value. An empty
/// list, or one of only -inf, gives -inf.
inline double log_sum_exp(const std::vector<double>& values) {
  double top = -std::numeric_limits<double>::infinity();
  for (double v : values) top = std::max(top, v);
  if (!std::isfinite(top)) return top;
  double sum = 0;
  for (double v : values) sum += std::exp(v - top);
  return top + std::log(sum);
}

/// Incremental SHA-256 through OpenSSL's EVP interface.
class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(context_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(context_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size) { EVP_DigestUpdate(context_, data, size); }
  void update(const std::string& text) { update(text.data(), text.size()); }

  /// Returns the digest as 64 lowercase hex digits. Call it once.
  std::string hex_digest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(context_, digest, &length);
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(2 * length);
    for (unsigned int i = 0; i < length; ++i) {
      hex += digits[digest[i] >> 4];
      hex += digits[digest[i] & 0xf];
    }
    return hex;
  }

 private:
  EVP_MD_CTX* context_;
};

}  // namespace medfair::eval::detail
