#pragma once
// Preference-optimisation losses on per-sequence log-probabilities, and the
// log-probability helpers they need.
//
// SimPO (Meng, Xia and Chen 2024, arXiv:2405.14734, eq. 6):
//   L = -log sigmoid(beta * (mean log p(chosen) - mean log p(rejected)) - gamma)
// where the means are over response tokens, so no reference model is needed.
// Here gamma = gamma_beta_ratio * beta, as in the authors' code
// (github.com/princeton-nlp/SimPO, scripts/simpo_trainer.py); TRL's CPOTrainer
// with loss_type="simpo" calls gamma `simpo_gamma`.
//
// DPO (Rafailov et al. 2023, arXiv:2305.18290, eq. 7):
//   L = -log sigmoid(beta * ((log p(c) - log p_ref(c)) - (log p(r) - log p_ref(r))))
// on summed log-probabilities.
//
// Label smoothing eps (conservative DPO, as TRL implements it) mixes in the
// loss of the flipped label: (1 - eps) L(z) + eps L(-z).

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace medfair::align {

/// Label value of tokens that are not scored (prompt and padding), as in
/// PyTorch's cross_entropy and TRL.
inline constexpr int64_t kIgnoreIndex = -100;

/// A preference loss on a batch of B pairs.
struct PreferenceLoss {
  at::Tensor loss;              ///< scalar: mean of `losses` (plus the SFT term where added)
  at::Tensor losses;            ///< [B] per-pair preference loss
  at::Tensor chosen_rewards;    ///< [B] implicit reward of the chosen responses, detached
  at::Tensor rejected_rewards;  ///< [B] implicit reward of the rejected responses, detached
};

/// SimPO on length-normalised (mean per-token) log-probabilities [B]. Rewards
/// are beta * mean log-probability, as TRL's CPOTrainer logs them. Throws
/// ConfigError for beta <= 0 or label_smoothing outside [0, 0.5].
PreferenceLoss simpo_loss(const at::Tensor& chosen_logps, const at::Tensor& rejected_logps, double beta,
                          double gamma_beta_ratio, double label_smoothing = 0.0);

/// DPO (sigmoid loss) on summed log-probabilities [B] of the policy and the
/// reference model. Rewards are beta * (policy - reference). Throws
/// ConfigError for beta <= 0 or label_smoothing outside [0, 0.5].
PreferenceLoss dpo_loss(const at::Tensor& policy_chosen_logps, const at::Tensor& policy_rejected_logps,
                        const at::Tensor& reference_chosen_logps, const at::Tensor& reference_rejected_logps,
                        double beta, double label_smoothing = 0.0);

/// Per-sequence log-probabilities of the labelled tokens.
struct SequenceLogProbs {
  at::Tensor sum;     ///< [N] summed log-probability of the labelled tokens
  at::Tensor mean;    ///< [N] sum / tokens (NaN for a row without labelled tokens, as in TRL)
  at::Tensor tokens;  ///< [N] int64 number of labelled tokens
  at::Tensor token_logps;  ///< [M] log-probability of each labelled token, rows in order
  at::Tensor token_rows;   ///< [M] int64 row of each entry of token_logps
};

/// Log-probabilities of `labels` [N, T] under `logits` [N, T, V]: position t
/// predicts label t + 1, and labels equal to kIgnoreIndex are skipped (TRL's
/// get_batch_logps).
SequenceLogProbs sequence_log_probs(const at::Tensor& logits, const at::Tensor& labels);

/// The same from per-token log-probabilities already gathered: `token_logps`
/// [M] with their `token_rows` [M] for `rows` sequences.
SequenceLogProbs sequence_log_probs_from_tokens(const at::Tensor& token_logps, const at::Tensor& token_rows,
                                                int64_t rows);

/// The SFT (negative log-likelihood) term: mean cross-entropy over all
/// labelled tokens of rows [0, rows) together (the chosen responses), as TRL's
/// nll_loss and the SimPO authors' sft_weight term compute it.
at::Tensor sft_loss(const SequenceLogProbs& log_probs, int64_t rows);

}  // namespace medfair::align
