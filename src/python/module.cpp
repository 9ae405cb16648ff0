#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "medfair's C++ core: models, tokenizers, prompts, audits and alignment";
  m.attr("__version__") = MEDFAIR_VERSION;
  medfair::python::bind_base(m);
  medfair::python::bind_models(m);
  medfair::python::bind_text(m);
  medfair::python::bind_encoder(m);
  medfair::python::bind_stats(m);
  medfair::python::bind_prompts(m);
  medfair::python::bind_io(m);
  medfair::python::bind_net(m);
  medfair::python::bind_eval(m);
  medfair::python::bind_generation(m);
  medfair::python::bind_prefs(m);
  medfair::python::bind_align(m);
}
