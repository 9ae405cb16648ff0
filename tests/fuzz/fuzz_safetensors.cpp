// libFuzzer target for the safetensors reader: any input must open cleanly or
// raise a medfair::Error, and reading every tensor must stay in bounds.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "medfair/error.hpp"
#include "medfair/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/medfair_fuzz_safetensors_" + std::to_string(::getpid()) + ".safetensors";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const auto file = medfair::io::SafetensorsFile::open(path);
    for (const auto& info : file.tensors()) {
      (void)file.tensor_bytes(info);
      if (info.n_elements <= (1u << 20)) {
        try {
          (void)file.to_float(info);
        } catch (const medfair::Error&) {
        }
      }
    }
  } catch (const medfair::Error&) {
  }
  return 0;
}
