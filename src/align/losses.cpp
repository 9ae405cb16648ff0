// Preference losses and sequence log-probabilities (see losses.hpp for the
// formulas and their sources).

#include "medfair/align/losses.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "medfair/error.hpp"

namespace medfair::align {

namespace {

void check_hyperparameters(const char* loss, double beta, double label_smoothing) {
  if (!(beta > 0.0)) throw ConfigError(fmt::format("{}: beta is {}; it must be positive", loss, beta));
  if (!(label_smoothing >= 0.0 && label_smoothing <= 0.5)) {
    throw ConfigError(fmt::format("{}: label_smoothing is {}; use a value in [0, 0.5]", loss, label_smoothing));
  }
}

void check_pair(const char* loss, const at::Tensor& chosen, const at::Tensor& rejected) {
  if (chosen.dim() != 1 || chosen.sizes() != rejected.sizes()) {
    throw ConfigError(fmt::format("{}: chosen and rejected log-probabilities must both be [batch]; got {} and {} "
                                  "dimensions with {} and {} entries",
                                  loss, chosen.dim(), rejected.dim(), chosen.numel(), rejected.numel()));
  }
}

// (1 - eps) * -log sigmoid(z) + eps * -log sigmoid(-z)
at::Tensor smoothed_sigmoid_loss(const at::Tensor& z, double label_smoothing) {
  at::Tensor loss = -at::log_sigmoid(z) * (1.0 - label_smoothing);
  if (label_smoothing > 0.0) loss = loss - at::log_sigmoid(-z) * label_smoothing;
  return loss;
}

}  // namespace

PreferenceLoss simpo_loss(const at::Tensor& chosen_logps, const at::Tensor& rejected_logps, double beta,
                          double gamma_beta_ratio, double label_smoothing) {
  check_hyperparameters("simpo_loss", beta, label_smoothing);
  check_pair("simpo_loss", chosen_logps, rejected_logps);
  at::Tensor margin = chosen_logps - rejected_logps - gamma_beta_ratio;
  PreferenceLoss out;
  out.losses = smoothed_sigmoid_loss(beta * margin, label_smoothing);
  out.loss = out.losses.mean();
  out.chosen_rewards = beta * chosen_logps.detach();
  out.rejected_rewards = beta * rejected_logps.detach();
  return out;
}

PreferenceLoss dpo_loss(const at::Tensor& policy_chosen_logps, const at::Tensor& policy_rejected_logps,
                        const at::Tensor& reference_chosen_logps, const at::Tensor& reference_rejected_logps,
                        double beta, double label_smoothing) {
  check_hyperparameters("dpo_loss", beta, label_smoothing);
  check_pair("dpo_loss", policy_chosen_logps, policy_rejected_logps);
  check_pair("dpo_loss", reference_chosen_logps, reference_rejected_logps);
  check_pair("dpo_loss", policy_chosen_logps, reference_chosen_logps);
  at::Tensor chosen_ratio = policy_chosen_logps - reference_chosen_logps.detach();
  at::Tensor rejected_ratio = policy_rejected_logps - reference_rejected_logps.detach();
  PreferenceLoss out;
  out.losses = smoothed_sigmoid_loss(beta * (chosen_ratio - rejected_ratio), label_smoothing);
  out.loss = out.losses.mean();
  out.chosen_rewards = beta * chosen_ratio.detach();
  out.rejected_rewards = beta * rejected_ratio.detach();
  return out;
}

SequenceLogProbs sequence_log_probs_from_tokens(const at::Tensor& token_logps, const at::Tensor& token_rows,
                                                int64_t rows) {
  SequenceLogProbs out;
  auto float_options = at::TensorOptions().dtype(token_logps.scalar_type()).device(token_logps.device());
  out.sum = at::zeros({rows}, float_options).index_add(0, token_rows, token_logps);
  out.tokens = at::zeros({rows}, at::TensorOptions().dtype(at::kLong).device(token_logps.device()))
                   .index_add(0, token_rows, at::ones_like(token_rows));
  out.mean = out.sum / out.tokens.to(out.sum.scalar_type());
  out.token_logps = token_logps;
  out.token_rows = token_rows;
  return out;
}

SequenceLogProbs sequence_log_probs(const at::Tensor& logits, const at::Tensor& labels) {
  if (logits.dim() != 3 || labels.dim() != 2 || logits.size(0) != labels.size(0) || logits.size(1) != labels.size(1)) {
    throw ConfigError("sequence_log_probs: logits must be [N, T, V] and labels [N, T] with the same N and T");
  }
  const int64_t rows = labels.size(0);
  at::Tensor shifted = labels.narrow(1, 1, labels.size(1) - 1);                    // [N, T-1]
  at::Tensor scored = shifted.ne(kIgnoreIndex).nonzero();                          // [M, 2]
  at::Tensor row = scored.select(1, 0);
  at::Tensor position = scored.select(1, 1);
  at::Tensor picked = logits.narrow(1, 0, logits.size(1) - 1).index({row, position});  // [M, V]
  at::Tensor targets = shifted.index({row, position});
  at::Tensor token_logps = at::log_softmax(picked.to(at::kFloat), -1).gather(1, targets.unsqueeze(1)).squeeze(1);
  return sequence_log_probs_from_tokens(token_logps, row, rows);
}

at::Tensor sft_loss(const SequenceLogProbs& log_probs, int64_t rows) {
  at::Tensor selected = log_probs.token_rows.lt(rows);
  at::Tensor count = selected.sum().to(at::kFloat);
  return -(log_probs.token_logps * selected.to(log_probs.token_logps.scalar_type())).sum() / count;
}

}  // namespace medfair::align
