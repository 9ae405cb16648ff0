#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include <catch2/catch.hpp>

#include "medfair/io/half.hpp"

using namespace medfair::io;

TEST_CASE("fp16 round trip of every pattern", "[half]") {
  for (std::uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = fp16_to_fp32(static_cast<std::uint16_t>(h));
    const bool is_nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    if (is_nan) {
      REQUIRE(std::isnan(f));
      REQUIRE(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
    } else {
      REQUIRE(fp32_to_fp16(f) == h);
    }
  }
}

TEST_CASE("fp16 known values", "[half]") {
  CHECK(fp16_to_fp32(0x3C00) == 1.0f);
  CHECK(fp16_to_fp32(0xC000) == -2.0f);
  CHECK(fp16_to_fp32(0x7BFF) == 65504.0f);
  CHECK(fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(fp16_to_fp32(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(fp16_to_fp32(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(std::signbit(fp16_to_fp32(0x8000)));
  // Ties round to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
  CHECK(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
  CHECK(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);
  CHECK(fp32_to_fp16(65519.0f) == 0x7BFF);
  CHECK(fp32_to_fp16(65520.0f) == 0x7C00);  // the tie above 65504 rounds to infinity
  CHECK(fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and the smallest subnormal
  CHECK(fp32_to_fp16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(fp32_to_fp16(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK((fp32_to_fp16(std::numeric_limits<float>::quiet_NaN()) & 0x7E00) == 0x7E00);
}

#if defined(__FLT16_MAX__)
TEST_CASE("fp16 narrowing matches the compiler", "[half]") {
  // The compiler's _Float16 conversion rounds to nearest even (IEEE 754).
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 2'000'000; ++i) {
    std::uint32_t pattern = bits(rng);
    if (i % 2 == 0) pattern = (pattern & 0x87FFFFFFu) | 0x30000000u;  // bias half the draws into the fp16 range
    const float f = std::bit_cast<float>(pattern);
    if (std::isnan(f)) continue;
    const auto expected = std::bit_cast<std::uint16_t>(static_cast<_Float16>(f));
    REQUIRE(fp32_to_fp16(f) == expected);
  }
}
#endif

TEST_CASE("bf16 conversions", "[half]") {
  CHECK(bf16_to_fp32(0x3F80) == 1.0f);
  CHECK(bf16_to_fp32(0xC040) == -3.0f);
  CHECK(fp32_to_bf16(1.0f) == 0x3F80);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: rounds to even (1).
  CHECK(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);
  CHECK(fp32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3F82);
  CHECK(fp32_to_bf16(std::bit_cast<float>(0x3F808001u)) == 0x3F81);  // just above the tie
  CHECK(fp32_to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(fp32_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds up past the largest bf16
  const std::uint16_t nan = fp32_to_bf16(std::bit_cast<float>(0x7F800001u));  // a NaN whose payload is cut off
  CHECK(std::isnan(bf16_to_fp32(nan)));
  for (std::uint32_t b = 0; b <= 0xFFFF; ++b) {
    const float f = bf16_to_fp32(static_cast<std::uint16_t>(b));
    if (!std::isnan(f)) REQUIRE(fp32_to_bf16(f) == b);
  }
}
