// SimPOTrainer: the training loop, learning-rate schedule, step log and
// checkpoints.

#include "medfair/align/simpo_trainer.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <cmath>
#include <fstream>
#include <mutex>
#include <numbers>
#include <nlohmann/json.hpp>
#include <random>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include "medfair/error.hpp"
#include "medfair/io/atomic_file.hpp"
#include "medfair/io/jsonl.hpp"
#include "medfair/log.hpp"

namespace medfair::align {

// ---- Options -------------------------------------------------------------------

TrainerOptions TrainerOptions::preset(std::string_view name) {
  TrainerOptions options;
  if (name == "simpo") return options;
  if (name == "notebook") {
    // TRL CPOTrainer(loss_type="simpo", cpo_alpha=0, beta=0.1) with LoRA r 18,
    // alpha 32, dropout 0 on all seven projections and max_length 256. The
    // other values are CPOConfig's defaults (trl 1.16): simpo_gamma 0.5, so
    // gamma/beta = 5, and learning rate 1e-6.
    options.method = "simpo";
    options.beta = 0.1;
    options.gamma_beta_ratio = 0.5 / 0.1;
    options.sft_weight = 0.0;
    options.lora = LoraOptions{18, 32.0, 0.0, false, lora_target_names(), 0};
    options.max_length = 256;
    options.learning_rate = 1e-6;
    options.warmup_ratio = 0.0;
    options.scheduler = "linear";
    return options;
  }
  throw ConfigError(fmt::format("unknown training preset \"{}\"; use simpo or notebook", name));
}

void TrainerOptions::validate() const {
  auto fail = [](const std::string& message) { throw ConfigError("TrainerOptions." + message); };
  if (method != "simpo" && method != "dpo") fail(fmt::format("method is \"{}\"; use simpo or dpo", method));
  if (!(beta > 0.0)) fail(fmt::format("beta is {}; it must be positive", beta));
  if (!(label_smoothing >= 0.0 && label_smoothing <= 0.5)) {
    fail(fmt::format("label_smoothing is {}; use a value in [0, 0.5]", label_smoothing));
  }
  if (!(sft_weight >= 0.0)) fail(fmt::format("sft_weight is {}; it must be 0 or more", sft_weight));
  if (!(learning_rate > 0.0)) fail(fmt::format("learning_rate is {}; it must be positive", learning_rate));
  if (!(weight_decay >= 0.0)) fail(fmt::format("weight_decay is {}; it must be 0 or more", weight_decay));
  if (warmup_steps < 0) fail(fmt::format("warmup_steps is {}; it must be 0 or more", warmup_steps));
  if (!(warmup_ratio >= 0.0 && warmup_ratio < 1.0)) fail(fmt::format("warmup_ratio is {}; use [0, 1)", warmup_ratio));
  if (scheduler != "cosine" && scheduler != "linear") {
    fail(fmt::format("scheduler is \"{}\"; use cosine or linear", scheduler));
  }
  if (epochs <= 0) fail(fmt::format("epochs is {}; it must be positive", epochs));
  if (max_steps < 0) fail(fmt::format("max_steps is {}; use 0 for no limit", max_steps));
  if (batch_size <= 0) fail(fmt::format("batch_size is {}; it must be positive", batch_size));
  if (grad_accumulation <= 0) fail(fmt::format("grad_accumulation is {}; it must be positive", grad_accumulation));
  if (!(max_grad_norm >= 0.0)) fail(fmt::format("max_grad_norm is {}; use 0 to disable clipping", max_grad_norm));
  if (max_length <= 0) fail(fmt::format("max_length is {}; it must be positive", max_length));
  if (max_prompt_length < 0) fail(fmt::format("max_prompt_length is {}; use 0 for no limit", max_prompt_length));
  if (checkpoint_every < 0) fail(fmt::format("checkpoint_every is {}; use 0 for no checkpoints", checkpoint_every));
  lora.validate();
}

namespace {

// The options that must not change between a run and its resumption.
nlohmann::json fingerprint(const TrainerOptions& o, size_t pairs) {
  return {{"method", o.method},          {"beta", o.beta},
          {"gamma_beta_ratio", o.gamma_beta_ratio}, {"label_smoothing", o.label_smoothing},
          {"sft_weight", o.sft_weight},  {"learning_rate", o.learning_rate},
          {"weight_decay", o.weight_decay}, {"warmup_steps", o.warmup_steps},
          {"warmup_ratio", o.warmup_ratio}, {"scheduler", o.scheduler},
          {"epochs", o.epochs},          {"max_steps", o.max_steps},
          {"batch_size", o.batch_size},  {"grad_accumulation", o.grad_accumulation},
          {"max_grad_norm", o.max_grad_norm}, {"seed", o.seed},
          {"max_length", o.max_length},  {"max_prompt_length", o.max_prompt_length},
          {"pairs", pairs}};
}

// Learning-rate factor of transformers' get_cosine_schedule_with_warmup and
// get_linear_schedule_with_warmup for the optimiser step `step` (0-based).
double schedule_factor(const std::string& kind, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  if (kind == "linear") return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

// Epoch `epoch`'s order of `count` pairs: Fisher-Yates with a generator seeded
// from the seed and the epoch, so any step's data follows from its position.
std::vector<size_t> epoch_order(size_t count, uint64_t seed, int64_t epoch) {
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i) order[i] = i;
  std::mt19937_64 generator(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  for (size_t i = count; i > 1; --i) {
    // NOTE: modulo reduction favours some j by at most i / 2^64 in
    // probability, which is negligible for any data set that fits in memory.
    size_t j = static_cast<size_t>(generator() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

void fsync_path(const std::filesystem::path& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw IOError(fmt::format("cannot open {} to flush it to disk", path.string()));
  ::fsync(fd);
  ::close(fd);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw IOError(fmt::format("cannot open {}", path.string()));
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}

nlohmann::ordered_json step_json(const StepLog& s) {
  return {{"step", s.step},
          {"epoch", s.epoch},
          {"loss", s.loss},
          {"chosen_reward", s.chosen_reward},
          {"rejected_reward", s.rejected_reward},
          {"reward_margin", s.reward_margin},
          {"reward_accuracy", s.reward_accuracy},
          {"learning_rate", s.learning_rate},
          {"grad_norm", s.grad_norm},
          {"tokens", s.tokens},
          {"tokens_per_second", s.tokens_per_second},
          {"elapsed_seconds", s.elapsed_seconds}};
}

StepLog step_from_json(const nlohmann::json& j) {
  StepLog s;
  s.step = j.at("step").get<int64_t>();
  s.epoch = j.at("epoch").get<double>();
  s.loss = j.at("loss").get<double>();
  s.chosen_reward = j.at("chosen_reward").get<double>();
  s.rejected_reward = j.at("rejected_reward").get<double>();
  s.reward_margin = j.at("reward_margin").get<double>();
  s.reward_accuracy = j.at("reward_accuracy").get<double>();
  s.learning_rate = j.at("learning_rate").get<double>();
  s.grad_norm = j.at("grad_norm").get<double>();
  s.tokens = j.at("tokens").get<int64_t>();
  s.tokens_per_second = j.at("tokens_per_second").get<double>();
  s.elapsed_seconds = j.at("elapsed_seconds").get<double>();
  return s;
}

// Turns adapter dropout on for a scope, so that an exception does not leave
// the caller's model in training mode.
class TrainingMode {
 public:
  explicit TrainingMode(CausalLM& model) : model_(model) { model_.set_training(true); }
  ~TrainingMode() { model_.set_training(false); }
  TrainingMode(const TrainingMode&) = delete;
  TrainingMode& operator=(const TrainingMode&) = delete;

 private:
  CausalLM& model_;
};

// Restores the adapters' enabled flag when a scope ends.
class AdaptersDisabled {
 public:
  explicit AdaptersDisabled(CausalLM& model) : model_(model) { model_.set_adapters_enabled(false); }
  ~AdaptersDisabled() { model_.set_adapters_enabled(true); }
  AdaptersDisabled(const AdaptersDisabled&) = delete;
  AdaptersDisabled& operator=(const AdaptersDisabled&) = delete;

 private:
  CausalLM& model_;
};

}  // namespace

// ---- Trainer -------------------------------------------------------------------

struct SimPOTrainer::State {
  CausalLM model;
  TrainerOptions options;
  ProgressCallback progress;
};

SimPOTrainer::SimPOTrainer(CausalLM model, TrainerOptions options)
    : state_(std::make_unique<State>(State{std::move(model), std::move(options), {}})) {
  state_->options.validate();
  if (!state_->model.has_lora()) {
    LoraOptions lora = state_->options.lora;
    lora.seed = state_->options.seed;
    state_->model.add_lora(lora);
  }
  state_->model.set_gradient_checkpointing(state_->options.gradient_checkpointing);
}

SimPOTrainer::~SimPOTrainer() = default;
SimPOTrainer::SimPOTrainer(SimPOTrainer&&) noexcept = default;
SimPOTrainer& SimPOTrainer::operator=(SimPOTrainer&&) noexcept = default;

const TrainerOptions& SimPOTrainer::options() const { return state_->options; }

CausalLM& SimPOTrainer::model() { return state_->model; }

void SimPOTrainer::set_progress_callback(ProgressCallback callback) { state_->progress = std::move(callback); }

std::vector<TokenizedPair> SimPOTrainer::tokenize(const std::vector<PreferencePair>& pairs,
                                                  TruncationCounts* counts) const {
  TruncationOptions limits{state_->options.max_length, state_->options.max_prompt_length};
  std::vector<TokenizedPair> tokenized;
  tokenized.reserve(pairs.size());
  TruncationCounts found;
  for (const PreferencePair& pair : pairs) {
    tokenized.push_back(tokenize_pair(state_->model, pair, limits));
    const TokenizedPair& t = tokenized.back();
    found.pairs += 1;
    found.prompts_truncated += t.prompt_truncated;
    found.responses_truncated += t.response_truncated;
    found.empty_responses += t.empty_response;
  }
  if (counts != nullptr) *counts = found;
  return tokenized;
}

BatchResult SimPOTrainer::compute_batch(const std::vector<const TokenizedPair*>& pairs) {
  const TrainerOptions& o = state_->options;
  CausalLM& model = state_->model;
  PreferenceBatch batch = collate_pairs(pairs, pad_token_id(model));
  const int64_t count = batch.pairs;

  SequenceLogProbs policy = batch_log_probs(model, batch);
  const bool simpo = o.method == "simpo";
  const at::Tensor& per_sequence = simpo ? policy.mean : policy.sum;

  BatchResult result;
  result.tokens = batch.tokens;
  result.chosen_logps = per_sequence.narrow(0, 0, count);
  result.rejected_logps = per_sequence.narrow(0, count, count);
  if (simpo) {
    result.loss = simpo_loss(result.chosen_logps, result.rejected_logps, o.beta, o.gamma_beta_ratio, o.label_smoothing);
  } else {
    // DPO's reference is the same model with its adapters switched off.
    SequenceLogProbs reference;
    {
      c10::NoGradGuard no_grad;
      AdaptersDisabled disabled(model);
      reference = batch_log_probs(model, batch);
    }
    result.loss = dpo_loss(result.chosen_logps, result.rejected_logps, reference.sum.narrow(0, 0, count),
                           reference.sum.narrow(0, count, count), o.beta, o.label_smoothing);
  }
  if (o.sft_weight > 0.0) result.loss.loss = result.loss.loss + o.sft_weight * sft_loss(policy, count);
  return result;
}

TrainResult SimPOTrainer::train(const std::vector<PreferencePair>& pairs, const std::filesystem::path& out,
                                bool resume) {
  const TrainerOptions& o = state_->options;
  CausalLM& model = state_->model;
  std::filesystem::create_directories(out);
  const std::filesystem::path checkpoint_dir = out / "checkpoint";
  const std::filesystem::path log_path = o.log_path.empty() ? out / "train_log.jsonl" : o.log_path;

  // Data: tokenize everything once; pairs left with an empty response have no
  // defined mean log-probability, so they are skipped.
  TrainResult result;
  result.adapter_dir = out;
  result.log_path = log_path;
  std::vector<TokenizedPair> tokenized = tokenize(pairs, &result.truncation);
  std::vector<const TokenizedPair*> usable;
  for (const TokenizedPair& pair : tokenized) {
    if (!pair.empty_response) usable.push_back(&pair);
  }
  if (result.truncation.empty_responses > 0) {
    log::warning("SimPOTrainer.train",
                 fmt::format("{} of {} pairs have a response that max_length {} leaves empty; they are skipped",
                             result.truncation.empty_responses, result.truncation.pairs, o.max_length));
  }
  if (usable.empty()) {
    throw DataError(fmt::format("SimPOTrainer.train: none of the {} pairs is usable; raise max_length (now {})",
                                pairs.size(), o.max_length));
  }

  // Schedule.
  const int64_t micro_per_epoch = (static_cast<int64_t>(usable.size()) + o.batch_size - 1) / o.batch_size;
  const int64_t steps_per_epoch = (micro_per_epoch + o.grad_accumulation - 1) / o.grad_accumulation;
  const int64_t total_steps = o.max_steps > 0 ? o.max_steps : steps_per_epoch * o.epochs;
  const int64_t warmup = o.warmup_steps > 0 ? o.warmup_steps
                                            : static_cast<int64_t>(std::ceil(o.warmup_ratio * static_cast<double>(total_steps)));

  // Resume: adapter, optimiser state, RNG and log come from the checkpoint.
  int64_t start_step = 0;
  std::filesystem::path resume_dir;
  if (resume) {
    if (std::filesystem::is_directory(checkpoint_dir)) {
      resume_dir = checkpoint_dir;
    } else if (std::filesystem::is_directory(out / "checkpoint.old")) {
      resume_dir = out / "checkpoint.old";  // a crash between the two renames of a checkpoint swap
    }
  }
  nlohmann::json expected_fingerprint = fingerprint(o, usable.size());
  if (!resume_dir.empty()) {
    nlohmann::json state;
    try {
      state = nlohmann::json::parse(read_file(resume_dir / "trainer_state.json"));
    } catch (const nlohmann::json::exception& error) {
      throw FormatError(fmt::format("{}: invalid JSON: {}", (resume_dir / "trainer_state.json").string(), error.what()));
    }
    if (state.value("options", nlohmann::json()) != expected_fingerprint) {
      throw ConfigError(fmt::format("{}: the checkpoint was written with other options or data ({}); resume with "
                                    "the same settings or start a new output folder",
                                    resume_dir.string(), state.value("options", nlohmann::json()).dump()));
    }
    start_step = state.at("step").get<int64_t>();
    model.load_adapter(resume_dir);
  } else if (resume) {
    log::info("SimPOTrainer.train", fmt::format("{} has no checkpoint; starting from step 0", out.string()));
  }
  result.resumed_from_step = start_step;

  std::vector<at::Tensor> parameters = model.adapter_parameters();
  torch::optim::AdamW optimizer(parameters, torch::optim::AdamWOptions(o.learning_rate)
                                                .betas({0.9, 0.999})
                                                .eps(1e-8)
                                                .weight_decay(o.weight_decay));
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  if (!resume_dir.empty()) {
    torch::load(optimizer, (resume_dir / "optimizer.pt").string());
    std::string bytes = read_file(resume_dir / "rng_state.bin");
    at::Tensor rng_state = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
    std::memcpy(rng_state.data_ptr(), bytes.data(), bytes.size());
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng_state);
  } else {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(o.seed);
  }

  // The log keeps the steps up to the checkpoint; later lines were from the
  // interrupted run and are written again. Reading stops at the first line
  // that does not parse, which can only be a line torn by the interruption.
  if (start_step > 0 && std::filesystem::exists(log_path)) {
    std::string kept_lines;
    std::ifstream previous(log_path);
    std::string line;
    while (std::getline(previous, line)) {
      if (line.empty()) continue;
      nlohmann::json value = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (value.is_discarded()) break;
      StepLog entry = step_from_json(value);
      if (entry.step > start_step) break;
      result.log.push_back(entry);
      kept_lines += io::to_jsonl_line(step_json(entry)) + "\n";
    }
    io::write_file_atomic(log_path, kept_lines);
  } else {
    io::write_file_atomic(log_path, std::string());
  }
  std::ofstream log_stream(log_path, std::ios::app);
  if (!log_stream) throw IOError(fmt::format("cannot open {} for appending the step log", log_path.string()));

  auto write_checkpoint = [&](int64_t step) {
    const std::filesystem::path staging = out / "checkpoint.tmp";
    std::filesystem::remove_all(staging);
    std::filesystem::create_directories(staging);
    model.save_adapter(staging);
    torch::save(optimizer, (staging / "optimizer.pt").string());
    fsync_path(staging / "optimizer.pt", false);
    at::Tensor rng_state;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      rng_state = generator.get_state();
    }
    io::write_file_atomic(staging / "rng_state.bin",
                          std::span<const std::byte>(static_cast<const std::byte*>(rng_state.data_ptr()),
                                                     rng_state.nbytes()));
    nlohmann::json state = {{"step", step}, {"total_steps", total_steps}, {"options", expected_fingerprint}};
    io::write_file_atomic(staging / "trainer_state.json", state.dump(2) + "\n");
    fsync_path(staging, true);
    // Swap: the old checkpoint stays readable until the new one is in place.
    const std::filesystem::path old = out / "checkpoint.old";
    std::filesystem::remove_all(old);
    if (std::filesystem::exists(checkpoint_dir)) std::filesystem::rename(checkpoint_dir, old);
    std::filesystem::rename(staging, checkpoint_dir);
    fsync_path(out, true);
    std::filesystem::remove_all(old);
  };

  const TrainingMode training(model);
  const auto started = std::chrono::steady_clock::now();
  for (int64_t step = start_step; step < total_steps; ++step) {
    const auto step_started = std::chrono::steady_clock::now();
    const int64_t epoch = step / steps_per_epoch;
    const int64_t step_in_epoch = step % steps_per_epoch;
    const std::vector<size_t> order = epoch_order(usable.size(), o.seed, epoch);
    const int64_t first_micro = step_in_epoch * o.grad_accumulation;
    const int64_t last_micro = std::min(first_micro + o.grad_accumulation, micro_per_epoch);

    // The pairs of each forward pass, and of the whole step for weighting.
    std::vector<std::vector<const TokenizedPair*>> micro_batches;
    int64_t step_pairs = 0;
    for (int64_t micro = first_micro; micro < last_micro; ++micro) {
      std::vector<const TokenizedPair*> batch;
      const size_t begin = static_cast<size_t>(micro * o.batch_size);
      const size_t end = std::min(begin + static_cast<size_t>(o.batch_size), usable.size());
      for (size_t i = begin; i < end; ++i) batch.push_back(usable[order[i]]);
      step_pairs += static_cast<int64_t>(batch.size());
      micro_batches.push_back(std::move(batch));
    }

    const double lr = o.learning_rate * schedule_factor(o.scheduler, step, warmup, total_steps);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

    double loss_sum = 0.0, chosen_sum = 0.0, rejected_sum = 0.0, correct = 0.0;
    int64_t tokens = 0;
    for (const auto& batch : micro_batches) {
      BatchResult batch_result = compute_batch(batch);
      // Each pass's mean loss is weighted by its share of the step's pairs,
      // so the step optimises the mean over all of them.
      const double weight = static_cast<double>(batch.size()) / static_cast<double>(step_pairs);
      (batch_result.loss.loss * weight).backward();
      loss_sum += batch_result.loss.loss.item<double>() * static_cast<double>(batch.size());
      chosen_sum += batch_result.loss.chosen_rewards.sum().item<double>();
      rejected_sum += batch_result.loss.rejected_rewards.sum().item<double>();
      correct += batch_result.loss.chosen_rewards.gt(batch_result.loss.rejected_rewards).sum().item<double>();
      tokens += batch_result.tokens;
    }

    double grad_norm = 0.0;
    if (o.max_grad_norm > 0.0) {
      grad_norm = torch::nn::utils::clip_grad_norm_(parameters, o.max_grad_norm);
    } else {
      std::vector<at::Tensor> norms;
      for (const at::Tensor& p : parameters) {
        if (p.grad().defined()) norms.push_back(p.grad().norm());
      }
      grad_norm = norms.empty() ? 0.0 : at::stack(norms).norm().item<double>();
    }
    optimizer.step();
    optimizer.zero_grad();

    const auto now = std::chrono::steady_clock::now();
    const double step_seconds = std::chrono::duration<double>(now - step_started).count();
    StepLog entry;
    entry.step = step + 1;
    entry.epoch = static_cast<double>(step + 1) / static_cast<double>(steps_per_epoch);
    entry.loss = loss_sum / static_cast<double>(step_pairs);
    entry.chosen_reward = chosen_sum / static_cast<double>(step_pairs);
    entry.rejected_reward = rejected_sum / static_cast<double>(step_pairs);
    entry.reward_margin = entry.chosen_reward - entry.rejected_reward;
    entry.reward_accuracy = correct / static_cast<double>(step_pairs);
    entry.learning_rate = lr;
    entry.grad_norm = grad_norm;
    entry.tokens = tokens;
    entry.tokens_per_second = step_seconds > 0.0 ? static_cast<double>(tokens) / step_seconds : 0.0;
    entry.elapsed_seconds = std::chrono::duration<double>(now - started).count();
    log_stream << io::to_jsonl_line(step_json(entry)) << '\n';
    log_stream.flush();
    if (!log_stream) throw IOError(fmt::format("cannot append to {}", log_path.string()));
    result.log.push_back(entry);
    if (state_->progress) state_->progress(entry, total_steps);

    if (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0) write_checkpoint(step + 1);
  }

  result.steps = total_steps;
  model.save_adapter(out);
  return result;
}

}  // namespace medfair::align
