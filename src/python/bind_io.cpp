// Binds the model-file readers as medfair._core.io, mainly so the Python tests
// can compare them with gguf-py and the safetensors package.

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.hpp"
#include "medfair/error.hpp"
#include "medfair/io/dequantize.hpp"
#include "medfair/io/gguf.hpp"
#include "medfair/io/safetensors.hpp"

namespace medfair::python {

namespace {

using namespace medfair::io;

py::object gguf_value_to_python(const GGUFValue& value) {
  return std::visit(
      [](const auto& v) -> py::object {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, GGUFArray>) {
          py::list items;
          for (const auto& item : v.items) items.append(gguf_value_to_python(item));
          return std::move(items);
        } else if constexpr (std::is_same_v<T, std::string>) {
          // Strings are bytes in the file; invalid UTF-8 must not abort the lookup.
          return py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(v.data(), static_cast<Py_ssize_t>(v.size()),
                                                                         "surrogateescape"));
        } else {
          return py::cast(v);
        }
      },
      value.value);
}

py::array_t<float> float_array(std::vector<float> values, const std::vector<std::int64_t>& shape) {
  auto* owned = new std::vector<float>(std::move(values));
  py::capsule release(owned, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  std::vector<py::ssize_t> py_shape(shape.begin(), shape.end());
  return py::array_t<float>(py_shape, owned->data(), release);
}

py::dict gguf_tensor_dict(const GGUFTensorInfo& info) {
  py::dict d;
  d["name"] = info.name;
  d["dims"] = info.dims;
  d["type"] = std::string(ggml_type_name(info.type));
  d["type_number"] = static_cast<std::uint32_t>(info.type);
  d["offset"] = info.offset;
  d["file_offset"] = info.file_offset;
  d["n_elements"] = info.n_elements;
  d["n_bytes"] = info.n_bytes;
  return d;
}

}  // namespace

void bind_io(py::module_& root) {
  py::module_ m = root.def_submodule("io", "GGUF and safetensors readers");

  py::class_<GGUFFile>(m, "GGUFFile")
      .def(py::init([](const std::filesystem::path& path) { return std::make_unique<GGUFFile>(GGUFFile::open(path)); }),
           py::arg("path"))
      .def_property_readonly("version", &GGUFFile::version)
      .def_property_readonly("alignment", &GGUFFile::alignment)
      .def_property_readonly("data_offset", &GGUFFile::data_offset)
      .def("keys",
           [](const GGUFFile& f) {
             std::vector<std::string> keys;
             for (const auto& kv : f.metadata()) keys.push_back(kv.key);
             return keys;
           })
      .def("value", [](const GGUFFile& f, const std::string& key) -> py::object {
             const GGUFValue* value = f.find(key);
             if (value == nullptr) throw ModelError("metadata key '" + key + "' not found");
             return gguf_value_to_python(*value);
           }, py::arg("key"))
      .def("value_type", [](const GGUFFile& f, const std::string& key) {
             const GGUFValue* value = f.find(key);
             if (value == nullptr) throw ModelError("metadata key '" + key + "' not found");
             return value->type_name();
           }, py::arg("key"))
      .def("get_int", &GGUFFile::get_int, py::arg("key"))
      .def("get_float", &GGUFFile::get_float, py::arg("key"))
      .def("get_string", &GGUFFile::get_string, py::arg("key"))
      .def("get_string_array", &GGUFFile::get_string_array, py::arg("key"))
      .def("tensors",
           [](const GGUFFile& f) {
             py::list out;
             for (const auto& info : f.tensors()) out.append(gguf_tensor_dict(info));
             return out;
           })
      .def("tensor", [](const GGUFFile& f, const std::string& name) { return gguf_tensor_dict(f.tensor(name)); },
           py::arg("name"))
      .def("tensor_bytes",
           [](const GGUFFile& f, const std::string& name) {
             const auto bytes = f.tensor_bytes(f.tensor(name));
             return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
           },
           py::arg("name"))
      .def("dequantize",
           [](const GGUFFile& f, const std::string& name) {
             const auto& info = f.tensor(name);
             std::vector<float> values;
             {
               py::gil_scoped_release release;
               values = f.dequantize(info);
             }
             return float_array(std::move(values), GGUFFile::torch_shape(info));
           },
           py::arg("name"), "Dequantize a tensor to a float32 array in PyTorch's shape (dims reversed).");

  m.def("dequantize_row",
        [](std::uint32_t type_number, const py::bytes& data, std::int64_t n) {
          const auto traits = ggml_type_traits(type_number);
          if (!traits) throw ModelError("unknown ggml type " + std::to_string(type_number));
          const std::string_view bytes = data;
          if (n < 0 || n % traits->block_size != 0 ||
              static_cast<std::uint64_t>(n / traits->block_size) * traits->type_size != bytes.size()) {
            throw FormatError("dequantize_row: " + std::to_string(bytes.size()) + " bytes do not hold " +
                              std::to_string(n) + " elements of type " + std::string(traits->name));
          }
          std::vector<float> out(static_cast<std::size_t>(n));
          dequantize_row(traits->type, bytes.data(), out.data(), n);
          return float_array(std::move(out), {n});
        },
        py::arg("type_number"), py::arg("data"), py::arg("n"));
  m.def("dequantizable_types", [] {
    std::vector<std::string> names;
    for (const auto type : dequantizable_types()) names.emplace_back(ggml_type_name(type));
    return names;
  });

  py::class_<SafetensorsFile>(m, "SafetensorsFile")
      .def(py::init([](const std::filesystem::path& path) {
             return std::make_unique<SafetensorsFile>(SafetensorsFile::open(path));
           }),
           py::arg("path"))
      .def_property_readonly("metadata", &SafetensorsFile::metadata)
      .def("tensor_names",
           [](const SafetensorsFile& f) {
             std::vector<std::string> names;
             for (const auto& info : f.tensors()) names.push_back(info.name);
             return names;
           })
      .def("dtype", [](const SafetensorsFile& f, const std::string& name) {
             return std::string(safetensors_dtype_name(f.tensor(name).dtype));
           }, py::arg("name"))
      .def("shape", [](const SafetensorsFile& f, const std::string& name) { return f.tensor(name).shape; },
           py::arg("name"))
      .def("tensor_bytes",
           [](const SafetensorsFile& f, const std::string& name) {
             const auto bytes = f.tensor_bytes(f.tensor(name));
             return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
           },
           py::arg("name"))
      .def("to_float",
           [](const SafetensorsFile& f, const std::string& name) {
             const auto& info = f.tensor(name);
             return float_array(f.to_float(info), info.shape);
           },
           py::arg("name"));

  m.def(
      "write_safetensors",
      [](const std::filesystem::path& path, const std::map<std::string, std::tuple<std::string, std::vector<std::int64_t>, py::bytes>>& tensors,
         const std::map<std::string, std::string>& metadata) {
        std::vector<std::string> buffers;
        std::vector<SafetensorsTensorData> data;
        buffers.reserve(tensors.size());
        for (const auto& [name, spec] : tensors) {
          const auto& [dtype_name, shape, bytes] = spec;
          const auto dtype = parse_safetensors_dtype(dtype_name);
          if (!dtype) throw ConfigError("unsupported safetensors dtype '" + dtype_name + "'");
          buffers.emplace_back(bytes);
          data.push_back({name, *dtype, shape, std::as_bytes(std::span<const char>(buffers.back()))});
        }
        write_safetensors(path, data, metadata);
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = std::map<std::string, std::string>{},
      "Write {name: (dtype, shape, raw bytes)} as a safetensors file, atomically.");
}

}  // namespace medfair::python
