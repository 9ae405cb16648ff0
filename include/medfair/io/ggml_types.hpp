#pragma once
// The ggml tensor types that GGUF files use, with their block sizes and byte
// sizes. Numbers and sizes follow ggml's ggml.h enum ggml_type and gguf-py's
// GGML_QUANT_SIZES (gguf 0.8.0).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace medfair::io {

enum class GGMLType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

/// Layout of one ggml type: `block_size` elements are stored in `type_size`
/// bytes (1 and the element size for unquantized types).
struct GGMLTypeTraits {
  GGMLType type;
  std::string_view name;     ///< ggml's name, for example "Q4_K"
  std::int64_t block_size;   ///< elements per block
  std::int64_t type_size;    ///< bytes per block
  bool can_dequantize;       ///< dequantize_row() supports this type
};

/// Returns the traits of a raw type number, or nullopt for a number ggml does
/// not define (or that this table does not know).
std::optional<GGMLTypeTraits> ggml_type_traits(std::uint32_t raw_type);

/// Returns the traits of a known type.
const GGMLTypeTraits& ggml_type_traits(GGMLType type);

/// Returns ggml's name of the type ("F32", "Q8_0", ...).
std::string_view ggml_type_name(GGMLType type);

/// Types that dequantize_row() converts to fp32, in enum order.
std::vector<GGMLType> dequantizable_types();

/// The names of dequantizable_types(), comma separated, for error messages.
std::string dequantizable_type_list();

}  // namespace medfair::io
