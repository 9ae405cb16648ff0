#pragma once
// One bind_* function per library layer, each in its own bind_<layer>.cpp.

#include <pybind11/pybind11.h>

namespace medfair::python {

namespace py = pybind11;

void bind_base(py::module_& m);
void bind_net(py::module_& m);

}  // namespace medfair::python
