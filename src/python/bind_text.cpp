// Binds the tokenizers and chat-template rendering of the text layer.

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.hpp"
#include "medfair/text/chat_template.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair::python {

namespace {

using text::BpeTokenizer;
using text::GgufVocab;
using text::SentencePieceTokenizer;
using text::Tokenizer;
using text::WordPieceTokenizer;

GgufVocab make_gguf_vocab(std::string model, std::vector<std::string> tokens, std::vector<std::string> merges,
                          std::vector<int32_t> token_types, std::vector<float> scores, std::string pre,
                          std::optional<int32_t> bos_id, std::optional<int32_t> eos_id, std::optional<int32_t> unk_id,
                          std::optional<int32_t> pad_id, bool add_bos, bool add_eos,
                          std::optional<bool> add_space_prefix, std::string origin) {
  GgufVocab vocab;
  vocab.model = std::move(model);
  vocab.tokens = std::move(tokens);
  vocab.merges = std::move(merges);
  vocab.token_types = std::move(token_types);
  vocab.scores = std::move(scores);
  vocab.pre = std::move(pre);
  vocab.special = {bos_id, eos_id, pad_id, unk_id};
  vocab.add_bos = add_bos;
  vocab.add_eos = add_eos;
  vocab.add_space_prefix = add_space_prefix;
  vocab.origin = std::move(origin);
  return vocab;
}

Conversation to_conversation(const std::vector<std::pair<std::string, std::string>>& messages) {
  Conversation conversation;
  for (const auto& [role, content] : messages) conversation.push_back({role, content});
  return conversation;
}

}  // namespace

void bind_text(py::module_& m) {
  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(m, "Tokenizer",
                                                   "Base class of medfair's tokenizers (BPE, SentencePiece, WordPiece).")
      .def("encode", &Tokenizer::encode, py::arg("text"), py::arg("add_special") = false,
           py::arg("parse_special") = true, py::call_guard<py::gil_scoped_release>(),
           "Return the token ids of `text` (str, UTF-8).")
      .def(
          "decode",
          [](const Tokenizer& self, const std::vector<int32_t>& ids, bool skip_special) {
            return self.decode(ids, skip_special);
          },
          py::arg("ids"), py::arg("skip_special") = false, "Return the text of `ids`.")
      .def("token_to_id", &Tokenizer::token_to_id, py::arg("token"))
      .def("id_to_token", &Tokenizer::id_to_token, py::arg("id"))
      .def("is_special", &Tokenizer::is_special, py::arg("id"))
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def_property_readonly("kind", [](const Tokenizer& self) { return std::string(self.kind()); })
      .def_property_readonly("bos_id", &Tokenizer::bos_id)
      .def_property_readonly("eos_id", &Tokenizer::eos_id)
      .def_property_readonly("pad_id", &Tokenizer::pad_id)
      .def_property_readonly("unk_id", &Tokenizer::unk_id);

  py::class_<BpeTokenizer, Tokenizer, std::shared_ptr<BpeTokenizer>>(m, "BPETokenizer", "Byte-level BPE tokenizer.")
      .def_static(
          "from_tokenizer_json",
          [](const std::filesystem::path& path) { return std::shared_ptr<BpeTokenizer>(BpeTokenizer::from_tokenizer_json(path)); },
          py::arg("path"))
      .def_static(
          "from_tokenizer_json_string",
          [](const std::string& json, const std::string& origin) {
            return std::shared_ptr<BpeTokenizer>(BpeTokenizer::from_tokenizer_json_string(json, origin));
          },
          py::arg("json"), py::arg("origin") = "<string>")
      .def_static(
          "from_gguf_vocab",
          [](std::vector<std::string> tokens, std::vector<std::string> merges, std::vector<int32_t> token_types,
             std::string pre, std::optional<int32_t> bos_id, std::optional<int32_t> eos_id,
             std::optional<int32_t> unk_id, std::optional<int32_t> pad_id, bool add_bos, bool add_eos,
             std::string origin) {
            return std::shared_ptr<BpeTokenizer>(BpeTokenizer::from_gguf_vocab(
                make_gguf_vocab("gpt2", std::move(tokens), std::move(merges), std::move(token_types), {},
                                std::move(pre), bos_id, eos_id, unk_id, pad_id, add_bos, add_eos, std::nullopt,
                                std::move(origin))));
          },
          py::arg("tokens"), py::arg("merges"), py::arg("token_types") = std::vector<int32_t>{},
          py::arg("pre") = "default", py::arg("bos_id") = py::none(), py::arg("eos_id") = py::none(),
          py::arg("unk_id") = py::none(), py::arg("pad_id") = py::none(), py::arg("add_bos") = false,
          py::arg("add_eos") = false, py::arg("origin") = "<gguf vocab>",
          "Build from the tokenizer.ggml.* metadata of a GGUF file whose tokenizer.ggml.model is \"gpt2\".")
      .def("pre_tokenize", &BpeTokenizer::pre_tokenize, py::arg("text"));

  py::class_<SentencePieceTokenizer, Tokenizer, std::shared_ptr<SentencePieceTokenizer>>(
      m, "SentencePieceTokenizer", "SentencePiece tokenizer through libsentencepiece.")
      .def_static(
          "from_model_file",
          [](const std::filesystem::path& path, bool add_bos, bool add_eos) {
            return std::shared_ptr<SentencePieceTokenizer>(SentencePieceTokenizer::from_model_file(path, add_bos, add_eos));
          },
          py::arg("path"), py::arg("add_bos") = true, py::arg("add_eos") = false)
      .def_static(
          "from_gguf_vocab",
          [](std::vector<std::string> tokens, std::vector<float> scores, std::vector<int32_t> token_types,
             std::optional<int32_t> bos_id, std::optional<int32_t> eos_id, std::optional<int32_t> unk_id,
             std::optional<int32_t> pad_id, bool add_bos, bool add_eos, std::optional<bool> add_space_prefix,
             std::string origin) {
            return std::shared_ptr<SentencePieceTokenizer>(SentencePieceTokenizer::from_gguf_vocab(
                make_gguf_vocab("llama", std::move(tokens), {}, std::move(token_types), std::move(scores), "",
                                bos_id, eos_id, unk_id, pad_id, add_bos, add_eos, add_space_prefix,
                                std::move(origin))));
          },
          py::arg("tokens"), py::arg("scores"), py::arg("token_types"), py::arg("bos_id") = py::none(),
          py::arg("eos_id") = py::none(), py::arg("unk_id") = py::none(), py::arg("pad_id") = py::none(),
          py::arg("add_bos") = true, py::arg("add_eos") = false, py::arg("add_space_prefix") = py::none(),
          py::arg("origin") = "<gguf vocab>",
          "Build from the tokenizer.ggml.* metadata of a GGUF file whose tokenizer.ggml.model is \"llama\".");

  py::class_<text::WordPieceOptions>(m, "WordPieceOptions")
      .def(py::init<>())
      .def_readwrite("lowercase", &text::WordPieceOptions::lowercase)
      .def_readwrite("handle_chinese_chars", &text::WordPieceOptions::handle_chinese_chars)
      .def_readwrite("max_input_chars_per_word", &text::WordPieceOptions::max_input_chars_per_word)
      .def_readwrite("max_length", &text::WordPieceOptions::max_length);

  py::class_<WordPieceTokenizer, Tokenizer, std::shared_ptr<WordPieceTokenizer>>(m, "WordPieceTokenizer",
                                                                                 "BERT WordPiece tokenizer.")
      .def_static(
          "from_tokenizer_json",
          [](const std::filesystem::path& path, std::optional<text::WordPieceOptions> options) {
            return std::shared_ptr<WordPieceTokenizer>(WordPieceTokenizer::from_tokenizer_json(path, options));
          },
          py::arg("path"), py::arg("options") = py::none())
      .def_static(
          "from_vocab_txt",
          [](const std::filesystem::path& path, const text::WordPieceOptions& options) {
            return std::shared_ptr<WordPieceTokenizer>(WordPieceTokenizer::from_vocab_txt(path, options));
          },
          py::arg("path"), py::arg("options") = text::WordPieceOptions{})
      .def_property_readonly("cls_id", &WordPieceTokenizer::cls_id)
      .def_property_readonly("sep_id", &WordPieceTokenizer::sep_id);

  m.def(
      "load_tokenizer_json",
      [](const std::filesystem::path& path) { return std::shared_ptr<Tokenizer>(text::load_tokenizer_json(path)); },
      py::arg("path"), "Load a tokenizer.json of model type BPE or WordPiece.");

  m.def(
      "render_chat",
      [](const std::string& template_or_family, const std::vector<std::pair<std::string, std::string>>& messages,
         bool add_generation_prompt, const std::string& bos_token, const std::string& eos_token) {
        return text::render_chat(template_or_family, to_conversation(messages), add_generation_prompt, bos_token,
                                 eos_token);
      },
      py::arg("template_or_family"), py::arg("messages"), py::arg("add_generation_prompt") = true,
      py::arg("bos_token") = "", py::arg("eos_token") = "",
      "Render (role, content) pairs with a Jinja chat template or a family name "
      "(chatml, llama3, llama2, gemma, mistral).");
  m.def(
      "chat_template_family",
      [](const std::string& template_or_family) {
        const auto tpl = text::ChatTemplate::from_string(template_or_family);
        return std::pair<std::string, std::optional<std::string>>(std::string(text::family_name(tpl.family())),
                                                                  tpl.default_system());
      },
      py::arg("template_or_family"),
      "Return (family name, default system message or None) recognised from a template.");
}

}  // namespace medfair::python
