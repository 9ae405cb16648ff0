// Binds the error hierarchy and routes medfair's log sink to Python's logging.

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "medfair/error.hpp"
#include "medfair/log.hpp"

namespace medfair::python {

namespace {

// Forwards one C++ log message to logging.getLogger("medfair"). Messages logged
// while Python is finalizing are dropped, since no interpreter can take them.
void forward_to_python_logging(log::Level level, std::string_view where, std::string_view message) {
  if (!Py_IsInitialized()) return;
  py::gil_scoped_acquire gil;
  try {
    // Leaked on purpose: destroying a Python object after the interpreter has
    // finalized would crash at process exit.
    static auto* logger = new py::object(py::module_::import("logging").attr("getLogger")("medfair"));
    logger->attr("log")(static_cast<int>(level), "[%s] %s", std::string(where), std::string(message));
  } catch (const py::error_already_set&) {
    PyErr_Clear();
  }
}

}  // namespace

void bind_base(py::module_& m) {
  // Python exception classes with the C++ names, so `except medfair.FormatError`
  // catches exactly what C++ throws as medfair::FormatError.
  static py::exception<Error> error(m, "Error", PyExc_RuntimeError);
  static py::exception<IOError> io_error(m, "IOError", error.ptr());
  static py::exception<FormatError> format_error(m, "FormatError", error.ptr());
  static py::exception<ConfigError> config_error(m, "ConfigError", error.ptr());
  static py::exception<DataError> data_error(m, "DataError", error.ptr());
  static py::exception<ModelError> model_error(m, "ModelError", error.ptr());
  static py::exception<EndpointError> endpoint_error(m, "EndpointError", error.ptr());
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const IOError& e) {
      py::set_error(io_error, e.what());
    } catch (const FormatError& e) {
      py::set_error(format_error, e.what());
    } catch (const ConfigError& e) {
      py::set_error(config_error, e.what());
    } catch (const DataError& e) {
      py::set_error(data_error, e.what());
    } catch (const ModelError& e) {
      py::set_error(model_error, e.what());
    } catch (const EndpointError& e) {
      py::set_error(endpoint_error, e.what());
    } catch (const Error& e) {
      py::set_error(error, e.what());
    }
  });

  log::set_sink(forward_to_python_logging);
  // Python's logging filters by level itself, so the C++ side passes everything
  // from debug up; set_log_level() lets users cut chatty debug traffic early.
  log::set_level(log::Level::debug);
  m.def("set_log_level", [](int level) { log::set_level(static_cast<log::Level>(level)); }, py::arg("level"),
        "Set the lowest level (a logging module constant such as logging.INFO) that C++ sends to Python.");
  m.def("_log_for_test", [](int level, const std::string& where, const std::string& message) {
    log::write(static_cast<log::Level>(level), where, message);
  });
}

}  // namespace medfair::python
