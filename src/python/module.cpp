#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "medfair's C++ core: models, tokenizers, prompts, audits and alignment";
  m.attr("__version__") = MEDFAIR_VERSION;
  medfair::python::bind_base(m);
  medfair::python::bind_net(m);
}
