#pragma once
// One bind_* function per library layer, each in its own bind_<layer>.cpp.

#include <pybind11/pybind11.h>

#include <string>

#include "medfair/chat.hpp"

namespace pybind11::detail {

// A chat message is a {"role": ..., "content": ...} dict in Python, as in
// transformers' apply_chat_template; a (role, content) pair is accepted too.
template <>
struct type_caster<medfair::ChatMessage> {
  PYBIND11_TYPE_CASTER(medfair::ChatMessage, const_name("dict[str, str]"));

  bool load(handle source, bool) {
    if (isinstance<dict>(source)) {
      auto message = reinterpret_borrow<dict>(source);
      if (!message.contains("role") || !message.contains("content")) return false;
      value.role = message["role"].cast<std::string>();
      value.content = message["content"].cast<std::string>();
      return true;
    }
    if (isinstance<tuple>(source) || isinstance<list>(source)) {
      auto pair = reinterpret_borrow<sequence>(source);
      if (pair.size() != 2) return false;
      value.role = pair[0].cast<std::string>();
      value.content = pair[1].cast<std::string>();
      return true;
    }
    return false;
  }

  static handle cast(const medfair::ChatMessage& message, return_value_policy, handle) {
    dict result;
    result["role"] = message.role;
    result["content"] = message.content;
    return result.release();
  }
};

}  // namespace pybind11::detail

namespace medfair::python {

namespace py = pybind11;

void bind_base(py::module_& m);
void bind_models(py::module_& m);
void bind_text(py::module_& m);
void bind_encoder(py::module_& m);
void bind_stats(py::module_& m);
void bind_prompts(py::module_& m);
void bind_io(py::module_& m);
void bind_eval(py::module_& m);
void bind_net(py::module_& m);
void bind_generation(py::module_& m);
void bind_prefs(py::module_& m);
void bind_align(py::module_& m);

}  // namespace medfair::python
