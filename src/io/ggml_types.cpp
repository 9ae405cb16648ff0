#include "medfair/io/ggml_types.hpp"

#include <array>

#include "medfair/error.hpp"

namespace medfair::io {

namespace {

constexpr std::int64_t kQK_K = 256;  // elements per k-quant super-block

// Block sizes and bytes per block: gguf-py 0.8.0 GGML_QUANT_SIZES.
constexpr std::array<GGMLTypeTraits, 32> kTraits{{
    {GGMLType::F32, "F32", 1, 4, true},
    {GGMLType::F16, "F16", 1, 2, true},
    {GGMLType::Q4_0, "Q4_0", 32, 2 + 16, true},
    {GGMLType::Q4_1, "Q4_1", 32, 2 + 2 + 16, true},
    {GGMLType::Q5_0, "Q5_0", 32, 2 + 4 + 16, true},
    {GGMLType::Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16, true},
    {GGMLType::Q8_0, "Q8_0", 32, 2 + 32, true},
    {GGMLType::Q8_1, "Q8_1", 32, 4 + 4 + 32, false},
    {GGMLType::Q2_K, "Q2_K", kQK_K, 2 + 2 + kQK_K / 16 + kQK_K / 4, true},
    {GGMLType::Q3_K, "Q3_K", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + 12, true},
    {GGMLType::Q4_K, "Q4_K", kQK_K, 2 + 2 + kQK_K / 2 + 12, true},
    {GGMLType::Q5_K, "Q5_K", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 8 + 12, true},
    {GGMLType::Q6_K, "Q6_K", kQK_K, 2 + kQK_K / 2 + kQK_K / 4 + kQK_K / 16, true},
    {GGMLType::Q8_K, "Q8_K", kQK_K, 4 + kQK_K + kQK_K / 8, true},
    {GGMLType::IQ2_XXS, "IQ2_XXS", kQK_K, 2 + kQK_K / 4, false},
    {GGMLType::IQ2_XS, "IQ2_XS", kQK_K, 2 + kQK_K / 4 + kQK_K / 32, false},
    {GGMLType::IQ3_XXS, "IQ3_XXS", kQK_K, 2 + kQK_K / 4 + kQK_K / 8, false},
    {GGMLType::IQ1_S, "IQ1_S", kQK_K, 2 + kQK_K / 8 + kQK_K / 16, false},
    {GGMLType::IQ4_NL, "IQ4_NL", 32, 2 + 16, false},
    {GGMLType::IQ3_S, "IQ3_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + kQK_K / 32 + 4, false},
    {GGMLType::IQ2_S, "IQ2_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 16, false},
    {GGMLType::IQ4_XS, "IQ4_XS", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 64, false},
    {GGMLType::I8, "I8", 1, 1, false},
    {GGMLType::I16, "I16", 1, 2, false},
    {GGMLType::I32, "I32", 1, 4, false},
    {GGMLType::I64, "I64", 1, 8, false},
    {GGMLType::F64, "F64", 1, 8, false},
    {GGMLType::IQ1_M, "IQ1_M", kQK_K, kQK_K / 8 + kQK_K / 16 + kQK_K / 32, false},
    {GGMLType::BF16, "BF16", 1, 2, true},
    {GGMLType::TQ1_0, "TQ1_0", kQK_K, 2 + 4 * 13, false},
    {GGMLType::TQ2_0, "TQ2_0", kQK_K, 2 + 64, false},
    {GGMLType::MXFP4, "MXFP4", 32, 1 + 16, false},
}};

}  // namespace

std::optional<GGMLTypeTraits> ggml_type_traits(std::uint32_t raw_type) {
  for (const auto& traits : kTraits) {
    if (static_cast<std::uint32_t>(traits.type) == raw_type) return traits;
  }
  return std::nullopt;
}

const GGMLTypeTraits& ggml_type_traits(GGMLType type) {
  for (const auto& traits : kTraits) {
    if (traits.type == type) return traits;
  }
  throw ModelError("unknown ggml type number " + std::to_string(static_cast<std::uint32_t>(type)));
}

std::string_view ggml_type_name(GGMLType type) { return ggml_type_traits(type).name; }

std::vector<GGMLType> dequantizable_types() {
  std::vector<GGMLType> types;
  for (const auto& traits : kTraits) {
    if (traits.can_dequantize) types.push_back(traits.type);
  }
  return types;
}

std::string dequantizable_type_list() {
  std::string list;
  for (const auto type : dequantizable_types()) {
    if (!list.empty()) list += ", ";
    list += ggml_type_name(type);
  }
  return list;
}

}  // namespace medfair::io
