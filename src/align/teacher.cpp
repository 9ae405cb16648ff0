#include "medfair/align/teacher.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "medfair/error.hpp"
#include "medfair/eval/evaluator.hpp"
#include "medfair/io/jsonl.hpp"
#include "medfair/log.hpp"

namespace medfair::align {

namespace {

// The last user turn of a conversation, which file references may be keyed by.
std::string last_user_turn(const Conversation& conversation) {
  for (auto it = conversation.rbegin(); it != conversation.rend(); ++it) {
    if (it->role == "user") return it->content;
  }
  return {};
}

std::string conversation_json(const Conversation& conversation) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  for (const ChatMessage& message : conversation) {
    messages.push_back({{"role", message.role}, {"content", message.content}});
  }
  return messages.dump();
}

}  // namespace

// ---- LocalTeacher ----------------------------------------------------------

LocalTeacher::LocalTeacher(const CausalLM& model, SamplingOptions sampling, std::shared_ptr<GenerationCache> cache,
                           std::string model_id, bool is_self)
    : model_(model),
      sampling_(std::move(sampling)),
      cache_(std::move(cache)),
      model_id_(model_id.empty() ? eval::sha256_file(model.source()) : std::move(model_id)),
      is_self_(is_self) {}

std::vector<std::string> LocalTeacher::answer(const std::vector<TeacherRequest>& requests) const {
  std::vector<Conversation> conversations;
  std::vector<uint64_t> seeds;
  for (const TeacherRequest& request : requests) {
    conversations.push_back(request.conversation);
    seeds.push_back(request.seed);
  }
  std::vector<CachedGeneration> generated =
      generate_cached(model_, model_id_, conversations, sampling_, seeds, cache_.get());
  std::vector<std::string> texts;
  for (CachedGeneration& generation : generated) texts.push_back(std::move(generation.text));
  return texts;
}

// ---- EndpointTeacher -------------------------------------------------------

EndpointTeacher::EndpointTeacher(net::EndpointOptions endpoint, SamplingOptions sampling,
                                 std::shared_ptr<GenerationCache> cache)
    : client_(std::move(endpoint)), sampling_(std::move(sampling)), cache_(std::move(cache)) {
  if (sampling_.top_k != 0) {
    throw ConfigError(fmt::format("teacher top_k = {} cannot be sent to an OpenAI-compatible chat endpoint, whose "
                                  "API has no top_k field; set it to 0",
                                  sampling_.top_k));
  }
  if (sampling_.repetition_penalty != 1.0) {
    throw ConfigError(fmt::format("teacher repetition_penalty = {} cannot be sent to an OpenAI-compatible chat "
                                  "endpoint, whose API has no such field; set it to 1",
                                  sampling_.repetition_penalty));
  }
}

std::string EndpointTeacher::model_id() const { return client_.options().model + "@" + client_.options().base_url; }

std::vector<std::string> EndpointTeacher::answer(const std::vector<TeacherRequest>& requests) const {
  const std::string settings = sampling_settings_json(sampling_);
  const std::string id = model_id();
  std::vector<std::string> texts(requests.size());
  std::vector<CacheKey> keys(requests.size());

  // Requests not in the cache, grouped by seed, because one call of
  // sample_answers sends one set of parameters.
  std::map<uint64_t, std::vector<size_t>> missing_by_seed;
  for (size_t i = 0; i < requests.size(); ++i) {
    keys[i] = CacheKey{id, conversation_json(requests[i].conversation), settings, requests[i].seed};
    std::optional<CachedGeneration> found = cache_ ? cache_->find(keys[i]) : std::nullopt;
    if (found) {
      texts[i] = std::move(found->text);
    } else {
      missing_by_seed[requests[i].seed].push_back(i);
    }
  }

  for (const auto& [seed, indices] : missing_by_seed) {
    net::GenerationParams params;
    params.max_tokens = static_cast<int>(sampling_.max_new_tokens);
    params.temperature = sampling_.temperature;
    params.top_p = sampling_.top_p;
    params.seed = static_cast<int64_t>(seed);
    params.stop = sampling_.stop;
    std::vector<Conversation> conversations;
    for (size_t i : indices) conversations.push_back(requests[i].conversation);
    std::vector<std::vector<std::string>> answers = net::sample_answers(client_, conversations, 1, params);
    for (size_t k = 0; k < indices.size(); ++k) {
      const size_t i = indices[k];
      texts[i] = answers.at(k).at(0);
      if (cache_) cache_->store(keys[i], CachedGeneration{texts[i], {}, "endpoint"});
    }
  }
  return texts;
}

// ---- FileTeacher -----------------------------------------------------------

FileTeacher::FileTeacher(const std::filesystem::path& path) : path_(path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw IOError(fmt::format("teacher reference file {} does not exist; pass a JSONL file with one "
                              "{{\"vignette_id\", \"reference\"}} object per line",
                              path.string()));
  }
  for (const io::JsonlRecord& record : io::read_jsonl(path)) {
    const std::string where = fmt::format("{}:{}", path.string(), record.line);
    if (!record.value.is_object()) throw FormatError(fmt::format("{}: expected a JSON object", where));
    auto text_field = [&](const char* name, bool required) -> std::string {
      auto it = record.value.find(name);
      if (it == record.value.end() || it->is_null()) {
        if (required) throw FormatError(fmt::format("{}: the field \"{}\" is missing", where, name));
        return {};
      }
      if (!it->is_string()) {
        throw FormatError(fmt::format("{}: the field \"{}\" must be a string, found {}", where, name, it->type_name()));
      }
      return it->get<std::string>();
    };
    std::string vignette = text_field("vignette_id", true);
    std::string prompt = text_field("prompt", false);
    std::string reference = text_field("reference", true);
    auto [it, inserted] = references_.emplace(std::make_pair(vignette, prompt), std::move(reference));
    if (!inserted) {
      throw FormatError(fmt::format("{}: a second reference for vignette \"{}\"{}; keep one line per vignette and "
                                    "prompt",
                                    where, vignette, prompt.empty() ? "" : " and the same prompt"));
    }
  }
  if (references_.empty()) {
    throw DataError(fmt::format("teacher reference file {} contains no references", path.string()));
  }
  sha256_ = eval::sha256_file(path);
}

std::vector<std::string> FileTeacher::answer(const std::vector<TeacherRequest>& requests) const {
  std::vector<std::string> texts;
  for (const TeacherRequest& request : requests) {
    auto it = references_.find({request.vignette_id, last_user_turn(request.conversation)});
    if (it == references_.end()) it = references_.find({request.vignette_id, std::string()});
    if (it == references_.end()) {
      throw DataError(fmt::format("teacher reference file {} has no reference for vignette \"{}\"; add a line "
                                  "{{\"vignette_id\": \"{}\", \"reference\": \"...\"}}",
                                  path_.string(), request.vignette_id, request.vignette_id));
    }
    texts.push_back(it->second);
  }
  return texts;
}

}  // namespace medfair::align
