#pragma once
// Exact conversions between fp32 and the 16-bit floating-point formats that
// model files use: IEEE 754 binary16 (fp16) and bfloat16 (bf16). The widening
// conversions are exact. The narrowing ones round to nearest with ties to
// even, keep infinities and signed zeros, and map every NaN to a quiet NaN.

#include <bit>
#include <cstdint>

namespace medfair::io {

/// Widens an IEEE binary16 bit pattern to fp32 (exact, subnormals included).
inline float fp16_to_fp32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  std::uint32_t mantissa = h & 0x3FFu;
  std::uint32_t bits;
  if (exponent == 0x1Fu) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // inf, or NaN with its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal: shift the mantissa up until its leading one reaches bit 10.
    std::uint32_t e = 127 - 15 + 1;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mantissa & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(bits);
}

/// Narrows fp32 to IEEE binary16, rounding to nearest with ties to even.
/// Values beyond the fp16 range become infinities.
inline std::uint16_t fp32_to_fp16(float f) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude >= 0x7F800000u) {
    if (magnitude == 0x7F800000u) return sign | 0x7C00u;
    return sign | 0x7E00u | static_cast<std::uint16_t>((magnitude >> 13) & 0x3FFu);  // quiet NaN
  }
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;  // rounds to >= 65520: overflow
  const std::int32_t exponent = static_cast<std::int32_t>(magnitude >> 23) - 127;
  if (exponent >= -14) {
    // Normal fp16: drop 13 mantissa bits with round-to-nearest-even. A carry
    // out of the mantissa correctly bumps the exponent.
    std::uint32_t value = magnitude - (static_cast<std::uint32_t>(127 - 15) << 23);
    const std::uint32_t round_bit = (value >> 13) & 1u;
    value += 0xFFFu + round_bit;
    return sign | static_cast<std::uint16_t>(value >> 13);
  }
  if (exponent < -25) return sign;  // below half the smallest subnormal: zero
  // Subnormal fp16: value = m * 2^-24 with m = full mantissa >> shift.
  const std::uint32_t full = (magnitude & 0x7FFFFFu) | 0x800000u;
  const std::uint32_t shift = static_cast<std::uint32_t>(-exponent - 14 + 13);  // 14..24
  std::uint32_t result = full >> shift;
  const std::uint32_t remainder = full & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  if (remainder > half || (remainder == half && (result & 1u))) ++result;
  return sign | static_cast<std::uint16_t>(result);
}

/// Widens a bfloat16 bit pattern to fp32 (exact).
inline float bf16_to_fp32(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

/// Narrows fp32 to bfloat16, rounding to nearest with ties to even; NaN stays a
/// quiet NaN with the same sign.
inline std::uint16_t fp32_to_bf16(float f) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  const std::uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

}  // namespace medfair::io
