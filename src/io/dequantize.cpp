// Dequantization kernels. Block layouts: ggml's ggml-common.h (block_q4_0 ...
// block_q8_K). The arithmetic follows ggml-quants.c dequantize_row_* operation
// by operation in fp32, which is also what gguf-py's gguf.quants computes with
// numpy, so results match both bit for bit. Contraction into fused
// multiply-adds would change the rounding, so it is switched off here.

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "medfair/io/dequantize.hpp"

#include <cstring>

#include <fmt/format.h>

#include "medfair/error.hpp"
#include "medfair/io/half.hpp"

namespace medfair::io {

namespace {

constexpr int kQK_K = 256;

// Unaligned little-endian loads; block fields have no alignment guarantee in a
// memory-mapped file.
inline float load_fp16(const std::uint8_t* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return fp16_to_fp32(bits);
}

inline float load_fp32(const std::uint8_t* p) {
  float value;
  std::memcpy(&value, p, 4);
  return value;
}

inline std::uint32_t load_u32(const std::uint8_t* p) {
  std::uint32_t value;
  std::memcpy(&value, p, 4);
  return value;
}

// block_q4_0 {fp16 d; u8 qs[16]}: low nibbles are elements 0..15, high
// nibbles 16..31, value (q - 8) * d.
void dequantize_q4_0(const std::uint8_t* block, float* y) {
  const float d = load_fp16(block);
  const std::uint8_t* qs = block + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// block_q4_1 {fp16 d; fp16 m; u8 qs[16]}: value q * d + m.
void dequantize_q4_1(const std::uint8_t* block, float* y) {
  const float d = load_fp16(block);
  const float m = load_fp16(block + 2);
  const std::uint8_t* qs = block + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

// block_q5_0 {fp16 d; u8 qh[4]; u8 qs[16]}: bit j of the little-endian qh
// word is the fifth bit of element j; value (q - 16) * d.
void dequantize_q5_0(const std::uint8_t* block, float* y) {
  const float d = load_fp16(block);
  const std::uint32_t qh = load_u32(block + 2);
  const std::uint8_t* qs = block + 6;
  for (int j = 0; j < 16; ++j) {
    const int high0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int high1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>(((qs[j] & 0x0F) | high0) - 16) * d;
    y[j + 16] = static_cast<float>(((qs[j] >> 4) | high1) - 16) * d;
  }
}

// block_q5_1 {fp16 d; fp16 m; u8 qh[4]; u8 qs[16]}: value q * d + m.
void dequantize_q5_1(const std::uint8_t* block, float* y) {
  const float d = load_fp16(block);
  const float m = load_fp16(block + 2);
  const std::uint32_t qh = load_u32(block + 4);
  const std::uint8_t* qs = block + 8;
  for (int j = 0; j < 16; ++j) {
    const int high0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int high1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>((qs[j] & 0x0F) | high0) * d + m;
    y[j + 16] = static_cast<float>((qs[j] >> 4) | high1) * d + m;
  }
}

// block_q8_0 {fp16 d; i8 qs[32]}: value q * d.
void dequantize_q8_0(const std::uint8_t* block, float* y) {
  const float d = load_fp16(block);
  const auto* qs = reinterpret_cast<const std::int8_t*>(block + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// block_q2_K {u8 scales[16]; u8 qs[64]; fp16 d; fp16 dmin}: 16 groups of 16
// with a 4-bit scale (low nibble) and 4-bit min (high nibble); each qs byte
// holds four 2-bit values for the four 32-element rows of a 128-element half.
void dequantize_q2_k(const std::uint8_t* block, float* y) {
  const std::uint8_t* scales = block;
  const std::uint8_t* q = block + 16;
  const float d = load_fp16(block + 16 + 64);
  const float dmin = load_fp16(block + 16 + 64 + 2);
  int is = 0;
  for (int n = 0; n < kQK_K; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const std::uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0x0F);
        const float ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) {
          *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
    q += 32;
  }
}

// block_q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; fp16 d}: 16 groups of
// 16 with 6-bit signed scales (biased by 32). Scale i has its low four bits in
// scales[i % 8] (low nibble for i < 8, high nibble otherwise) and its top two
// bits at bit 2 * (i / 4) of scales[8 + i % 4]. A clear hmask bit subtracts 4.
void dequantize_q3_k(const std::uint8_t* block, float* y) {
  const std::uint8_t* hmask = block;
  const std::uint8_t* q = block + 32;
  const std::uint8_t* packed = block + 32 + 64;
  const float d = load_fp16(block + 32 + 64 + 12);

  int scales[16];
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? (packed[i] & 0x0F) : (packed[i - 8] >> 4);
    const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    scales[i] = (low | (high << 4)) - 32;
  }

  int is = 0;
  std::uint8_t mask = 1;
  for (int n = 0; n < kQK_K; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const float dl = d * static_cast<float>(scales[is++]);
        for (int l = 0; l < 16; ++l) {
          const int index = l + 16 * half;
          const int value = ((q[index] >> shift) & 3) - ((hmask[index] & mask) ? 0 : 4);
          *y++ = dl * static_cast<float>(value);
        }
      }
      mask = static_cast<std::uint8_t>(mask << 1);
    }
    q += 32;
  }
}

// The 6-bit scale and min of group j (0..7) in the 12 packed bytes of
// block_q4_K and block_q5_K.
inline void k4_scale_min(int j, const std::uint8_t* packed, int& scale, int& min) {
  if (j < 4) {
    scale = packed[j] & 63;
    min = packed[j + 4] & 63;
  } else {
    scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
    min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}

// block_q4_K {fp16 d; fp16 dmin; u8 scales[12]; u8 qs[128]}: 8 groups of 32;
// each 32-byte run of qs holds two groups (low nibbles, then high nibbles).
void dequantize_q4_k(const std::uint8_t* block, float* y) {
  const float d = load_fp16(block);
  const float dmin = load_fp16(block + 2);
  const std::uint8_t* packed = block + 4;
  const std::uint8_t* q = block + 4 + 12;
  for (int group = 0; group < 8; group += 2) {
    int scale = 0;
    int min = 0;
    k4_scale_min(group, packed, scale, min);
    const float d1 = d * static_cast<float>(scale);
    const float m1 = dmin * static_cast<float>(min);
    k4_scale_min(group + 1, packed, scale, min);
    const float d2 = d * static_cast<float>(scale);
    const float m2 = dmin * static_cast<float>(min);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
  }
}

// block_q5_K {fp16 d; fp16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: as
// Q4_K, with bit `group` of qh[l] as the fifth bit of element l of that group.
void dequantize_q5_k(const std::uint8_t* block, float* y) {
  const float d = load_fp16(block);
  const float dmin = load_fp16(block + 2);
  const std::uint8_t* packed = block + 4;
  const std::uint8_t* qh = block + 4 + 12;
  const std::uint8_t* ql = block + 4 + 12 + 32;
  for (int group = 0; group < 8; group += 2) {
    int scale = 0;
    int min = 0;
    k4_scale_min(group, packed, scale, min);
    const float d1 = d * static_cast<float>(scale);
    const float m1 = dmin * static_cast<float>(min);
    k4_scale_min(group + 1, packed, scale, min);
    const float d2 = d * static_cast<float>(scale);
    const float m2 = dmin * static_cast<float>(min);
    const std::uint8_t bit1 = static_cast<std::uint8_t>(1u << group);
    const std::uint8_t bit2 = static_cast<std::uint8_t>(2u << group);
    for (int l = 0; l < 32; ++l) {
      *y++ = d1 * static_cast<float>((ql[l] & 0x0F) + ((qh[l] & bit1) ? 16 : 0)) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & bit2) ? 16 : 0)) - m2;
    }
    ql += 32;
  }
}

// block_q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; fp16 d}: 16 groups of 16,
// value (q - 32) * d * scale, computed as (d * scale) * q.
void dequantize_q6_k(const std::uint8_t* block, float* y) {
  const std::uint8_t* ql = block;
  const std::uint8_t* qh = block + 128;
  const auto* sc = reinterpret_cast<const std::int8_t*>(block + 128 + 64);
  const float d = load_fp16(block + 128 + 64 + 16);
  for (int n = 0; n < kQK_K; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// block_q8_K {f32 d; i8 qs[256]; i16 bsums[16]}: value q * d (bsums only
// speed up dot products).
void dequantize_q8_k(const std::uint8_t* block, float* y) {
  const float d = load_fp32(block);
  const auto* qs = reinterpret_cast<const std::int8_t*>(block + 4);
  for (int j = 0; j < kQK_K; ++j) y[j] = d * static_cast<float>(qs[j]);
}

using BlockKernel = void (*)(const std::uint8_t*, float*);

BlockKernel block_kernel(GGMLType type) {
  switch (type) {
    case GGMLType::Q4_0: return dequantize_q4_0;
    case GGMLType::Q4_1: return dequantize_q4_1;
    case GGMLType::Q5_0: return dequantize_q5_0;
    case GGMLType::Q5_1: return dequantize_q5_1;
    case GGMLType::Q8_0: return dequantize_q8_0;
    case GGMLType::Q2_K: return dequantize_q2_k;
    case GGMLType::Q3_K: return dequantize_q3_k;
    case GGMLType::Q4_K: return dequantize_q4_k;
    case GGMLType::Q5_K: return dequantize_q5_k;
    case GGMLType::Q6_K: return dequantize_q6_k;
    case GGMLType::Q8_K: return dequantize_q8_k;
    default: return nullptr;
  }
}

}  // namespace

void dequantize_row(GGMLType type, const void* src, float* dst, std::int64_t n) {
  const GGMLTypeTraits& traits = ggml_type_traits(type);
  if (!traits.can_dequantize) {
    throw ModelError(fmt::format("cannot dequantize ggml type {}; supported types: {}", traits.name,
                                 dequantizable_type_list()));
  }
  if (n < 0 || n % traits.block_size != 0) {
    throw FormatError(fmt::format("cannot dequantize {} elements of type {}: the count must be a non-negative "
                                  "multiple of the block size {}",
                                  n, traits.name, traits.block_size));
  }
  const auto* bytes = static_cast<const std::uint8_t*>(src);
  switch (type) {
    case GGMLType::F32:
      if (n > 0) std::memcpy(dst, src, static_cast<std::size_t>(n) * 4);
      return;
    case GGMLType::F16:
      for (std::int64_t i = 0; i < n; ++i) dst[i] = load_fp16(bytes + 2 * i);
      return;
    case GGMLType::BF16:
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, bytes + 2 * i, 2);
        dst[i] = bf16_to_fp32(bits);
      }
      return;
    default:
      break;
  }
  const BlockKernel kernel = block_kernel(type);
  const std::int64_t n_blocks = n / traits.block_size;
  for (std::int64_t b = 0; b < n_blocks; ++b) {
    kernel(bytes + b * traits.type_size, dst + b * traits.block_size);
  }
}

}  // namespace medfair::io
