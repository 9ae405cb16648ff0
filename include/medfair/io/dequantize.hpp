#pragma once
// Row kernels that expand ggml tensor data to fp32. Block layouts follow
// ggml's ggml-common.h; the arithmetic (operation order, fp32 throughout)
// matches ggml-quants.c and gguf-py's gguf.quants.dequantize, so results are
// bit-identical to both.

#include <cstdint>

#include "medfair/io/ggml_types.hpp"

namespace medfair::io {

/// Expands `n` elements of type `type` from `src` into `dst`. `n` must be a
/// multiple of the type's block size; `src` must hold n / block_size blocks.
/// Throws ModelError for a type that is not in dequantizable_types() (the
/// message lists the supported ones) and FormatError when `n` is negative or
/// not a multiple of the block size.
void dequantize_row(GGMLType type, const void* src, float* dst, std::int64_t n);

}  // namespace medfair::io
