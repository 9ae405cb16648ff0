// libFuzzer target for the GGUF reader: any input must open cleanly or raise
// a medfair::Error, and every accessor on an opened file must stay in bounds.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "medfair/error.hpp"
#include "medfair/io/gguf.hpp"

namespace {

std::string scratch_path() {
  return "/tmp/medfair_fuzz_gguf_" + std::to_string(::getpid()) + ".gguf";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = scratch_path();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const auto file = medfair::io::GGUFFile::open(path);
    for (const auto& entry : file.metadata()) {
      (void)entry.value.type_name();
      try {
        (void)file.get_int(entry.key);
      } catch (const medfair::Error&) {
      }
      try {
        (void)file.get_string_array(entry.key);
      } catch (const medfair::Error&) {
      }
      try {
        (void)file.get_float_array(entry.key);
      } catch (const medfair::Error&) {
      }
    }
    for (const auto& info : file.tensors()) {
      (void)medfair::io::GGUFFile::torch_shape(info);
      (void)file.tensor_bytes(info);
      if (info.n_elements <= (1u << 20)) {
        try {
          (void)file.dequantize(info);
        } catch (const medfair::Error&) {
        }
      }
    }
  } catch (const medfair::Error&) {
  }
  return 0;
}
