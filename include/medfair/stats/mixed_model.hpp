#pragma once
// Linear mixed model with one random intercept per cluster (vignette):
//   y_ij = x_ij' beta + u_i + e_ij,  u_i ~ N(0, sigma_u^2),  e_ij ~ N(0, sigma^2).
// Fitted by REML (default) or ML, with results that follow
// statsmodels.regression.mixed_linear_model.MixedLM(y, X, groups).fit().

#include <cstddef>
#include <string>
#include <vector>

namespace medfair::stats {

/// Options of fit_random_intercept.
struct MixedModelOptions {
  bool reml = true;                ///< Restricted maximum likelihood when true, maximum likelihood when false (default true).
  double max_log_ratio = 12.0;     ///< Upper end of the search over log(sigma_u^2 / sigma^2) (default 12).
  double min_log_ratio = -25.0;    ///< Lower end of that search; below it the ratio is taken as 0 (default -25).
};

/// Fitted random-intercept model.
struct MixedModelResult {
  std::vector<double> coefficients;     ///< Fixed effects beta, in design column order.
  std::vector<double> standard_errors;  ///< From the inverse observed Hessian, as statsmodels' bse_fe.
  std::vector<double> z_values;         ///< coefficients / standard_errors.
  std::vector<double> p_values;         ///< Two-sided normal p-values, as statsmodels' pvalues.
  double group_variance = 0;            ///< sigma_u^2, statsmodels' cov_re.
  double residual_variance = 0;         ///< sigma^2, statsmodels' scale.
  double log_likelihood = 0;            ///< Restricted or full log-likelihood at the optimum, as statsmodels' llf.
  std::size_t n_observations = 0;
  std::size_t n_clusters = 0;
  bool on_boundary = false;             ///< True when the fitted sigma_u^2 is 0 (standard errors then come from the model without the random intercept).
  std::string method;                   ///< "REML" or "ML".
};

/// Fits the model to responses `y`, a design matrix `design` (one row per
/// observation, one column per fixed effect, an intercept column included by
/// the caller) and a cluster id per observation. The profile likelihood is
/// maximised over the variance ratio gamma = sigma_u^2 / sigma^2 by a grid
/// over log gamma followed by Brent's method; beta and sigma^2 are then the
/// closed-form GLS estimates. Standard errors invert the observed Hessian of
/// the profile log-likelihood in (beta, gamma), as statsmodels does.
/// Throws DataError on mismatched sizes, a non-finite value, fewer
/// observations than fixed effects plus one, or a rank-deficient design.
MixedModelResult fit_random_intercept(const std::vector<double>& y, const std::vector<std::vector<double>>& design,
                                      const std::vector<std::size_t>& cluster, const MixedModelOptions& options = {});

}  // namespace medfair::stats
