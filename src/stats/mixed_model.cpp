// Random-intercept linear mixed model. The likelihood, the GLS estimates and
// the Hessian follow statsmodels' MixedLM (statsmodels/regression/
// mixed_linear_model.py: loglike, get_fe_params, hessian), specialised to one
// random intercept, where V_i = I + gamma 1 1' has the closed-form inverse
// I - gamma / (1 + n_i gamma) 1 1'.

#include "medfair/stats/mixed_model.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <boost/math/constants/constants.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/tools/minima.hpp>
#include <cmath>
#include <fmt/format.h>
#include <limits>
#include <map>

#include "medfair/error.hpp"

namespace medfair::stats {

namespace {

struct Cluster {
  std::vector<std::size_t> rows;
  Eigen::VectorXd column_sums;  // a_i = X_i' 1
  double y_sum = 0;             // 1' y_i
};

class Problem {
 public:
  Problem(const Eigen::VectorXd& y, const Eigen::MatrixXd& x, std::vector<Cluster> clusters, bool reml)
      : y_(y), x_(x), clusters_(std::move(clusters)), reml_(reml) {
    xtx_ = x_.transpose() * x_;
    xty_ = x_.transpose() * y_;
  }

  // GLS state at a variance ratio gamma (scale 1).
  struct State {
    Eigen::MatrixXd xtvix;  // X' V^-1 X
    Eigen::VectorXd beta;
    Eigen::VectorXd residual;
    double quadratic = 0;   // r' V^-1 r
    double log_det_v = 0;   // sum log(1 + n_i gamma)
    double log_det_xtvix = 0;
  };

  State evaluate(double gamma) const {
    State s;
    const Eigen::Index p = x_.cols();
    s.xtvix = xtx_;
    Eigen::VectorXd xtviy = xty_;
    for (const auto& c : clusters_) {
      const double n = static_cast<double>(c.rows.size());
      const double shrink = gamma / (1.0 + n * gamma);
      s.xtvix.noalias() -= shrink * c.column_sums * c.column_sums.transpose();
      xtviy.noalias() -= shrink * c.y_sum * c.column_sums;
      s.log_det_v += std::log1p(n * gamma);
    }

    Eigen::LDLT<Eigen::MatrixXd> solver(s.xtvix);
    s.beta = solver.solve(xtviy);
    s.residual = y_ - x_ * s.beta;
    for (const auto& c : clusters_) {
      const double n = static_cast<double>(c.rows.size());
      const double shrink = gamma / (1.0 + n * gamma);
      double sum = 0;
      double squares = 0;
      for (std::size_t row : c.rows) {
        sum += s.residual[static_cast<Eigen::Index>(row)];
        squares += s.residual[static_cast<Eigen::Index>(row)] * s.residual[static_cast<Eigen::Index>(row)];
      }
      s.quadratic += squares - shrink * sum * sum;
    }
    double log_det = 0;
    const auto diagonal = solver.vectorD();
    for (Eigen::Index i = 0; i < p; ++i) log_det += std::log(diagonal[i]);
    s.log_det_xtvix = log_det;
    return s;
  }

  // statsmodels' MixedLM.loglike with the fixed effects at their GLS values.
  double log_likelihood(const State& s) const {
    const double n = static_cast<double>(y_.size());
    const double pi2 = boost::math::constants::two_pi<double>();
    double value = -s.log_det_v / 2.0;
    if (reml_) {
      const double m = n - static_cast<double>(x_.cols());
      value -= m * std::log(s.quadratic) / 2.0;
      value -= s.log_det_xtvix / 2.0;
      value -= m * std::log(pi2) / 2.0;
      value += m * std::log(m) / 2.0;
      value -= m / 2.0;
    } else {
      value -= n * std::log(s.quadratic) / 2.0;
      value -= n * std::log(pi2) / 2.0;
      value += n * std::log(n) / 2.0;
      value -= n / 2.0;
    }
    return value;
  }

  double degrees_of_freedom() const {
    return static_cast<double>(y_.size()) - (reml_ ? static_cast<double>(x_.cols()) : 0.0);
  }

  // Observed Hessian of the profile log-likelihood in (beta, gamma), the
  // random-intercept case of statsmodels' MixedLM.hessian.
  Eigen::MatrixXd hessian(double gamma, const State& s) const {
    const Eigen::Index p = x_.cols();
    const double fac = degrees_of_freedom();
    const double q = s.quadratic;
    Eigen::VectorXd cross = Eigen::VectorXd::Zero(p);  // sum X'V^-1 z * z'V^-1 r
    Eigen::MatrixXd xtax = Eigen::MatrixXd::Zero(p, p);
    Eigen::MatrixXd f = Eigen::MatrixXd::Zero(p, p);
    double b = 0;
    double d = 0;
    double re = 0;
    for (const auto& c : clusters_) {
      const double n = static_cast<double>(c.rows.size());
      const double w = 1.0 / (1.0 + n * gamma);  // V_i^-1 1 = w 1
      double e = 0;
      for (std::size_t row : c.rows) e += s.residual[static_cast<Eigen::Index>(row)];
      const Eigen::VectorXd xviz = w * c.column_sums;  // X_i' V_i^-1 z
      const double zvir = w * e;                        // z' V_i^-1 r_i
      const double zviz = n * w;                        // z' V_i^-1 z
      cross += xviz * zvir;
      b += zvir * zvir;
      d += 2.0 * zvir * zviz * zvir;
      re += zviz * zviz / 2.0;
      if (reml_) {
        xtax += xviz * xviz.transpose();
        f += 2.0 * zviz * xviz * xviz.transpose();
      }
    }

    Eigen::MatrixXd h(p + 1, p + 1);
    h.topLeftCorner(p, p) = -fac * s.xtvix / q;
    double h_re = re - 0.5 * fac * (d / q - b * b / (q * q));
    if (reml_) {
      Eigen::LDLT<Eigen::MatrixXd> solver(s.xtvix);
      const Eigen::MatrixXd ql = solver.solve(xtax);
      h_re += 0.5 * ((ql * ql).trace() - solver.solve(f).trace());
    }
    const Eigen::VectorXd fere = -fac * cross / q;
    h.topRightCorner(p, 1) = fere;
    h.bottomLeftCorner(1, p) = fere.transpose();
    h(p, p) = h_re;
    return h;
  }

  Eigen::Index n_fixed() const { return x_.cols(); }

 private:
  Eigen::VectorXd y_;
  Eigen::MatrixXd x_;
  Eigen::MatrixXd xtx_;
  Eigen::VectorXd xty_;
  std::vector<Cluster> clusters_;
  bool reml_;
};

}  // namespace

MixedModelResult fit_random_intercept(const std::vector<double>& y, const std::vector<std::vector<double>>& design,
                                      const std::vector<std::size_t>& cluster, const MixedModelOptions& options) {
  const std::size_t n = y.size();
  if (design.size() != n || cluster.size() != n) {
    throw DataError(fmt::format(
        "fit_random_intercept: y has {} rows, design has {} and cluster has {}; pass one row and one cluster id per "
        "observation",
        n, design.size(), cluster.size()));
  }
  if (n == 0 || design.front().empty()) {
    throw DataError("fit_random_intercept: no observations or no fixed effects; pass a design with an intercept column");
  }
  const std::size_t p = design.front().size();
  if (n < p + 1) {
    throw DataError(fmt::format("fit_random_intercept: {} observations for {} fixed effects; need at least {}", n, p,
                                p + 1));
  }
  if (!(options.min_log_ratio < options.max_log_ratio)) {
    throw ConfigError(fmt::format("fit_random_intercept: min_log_ratio {} must be below max_log_ratio {}",
                                  options.min_log_ratio, options.max_log_ratio));
  }

  Eigen::VectorXd yv(static_cast<Eigen::Index>(n));
  Eigen::MatrixXd x(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(p));
  std::map<std::size_t, std::size_t> cluster_index;
  std::vector<Cluster> clusters;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(y[i])) {
      throw DataError(fmt::format("fit_random_intercept: y[{}] is {}; drop or clip non-finite responses first", i, y[i]));
    }
    if (design[i].size() != p) {
      throw DataError(fmt::format("fit_random_intercept: design row {} has {} columns but row 0 has {}", i,
                                  design[i].size(), p));
    }
    yv[static_cast<Eigen::Index>(i)] = y[i];
    for (std::size_t j = 0; j < p; ++j) {
      if (!std::isfinite(design[i][j])) {
        throw DataError(fmt::format("fit_random_intercept: design[{}][{}] is {}; expected a finite value", i, j,
                                    design[i][j]));
      }
      x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = design[i][j];
    }
    auto [it, inserted] = cluster_index.emplace(cluster[i], clusters.size());
    if (inserted) {
      clusters.push_back(Cluster{{}, Eigen::VectorXd::Zero(static_cast<Eigen::Index>(p)), 0.0});
    }
    Cluster& c = clusters[it->second];
    c.rows.push_back(i);
    c.column_sums += x.row(static_cast<Eigen::Index>(i)).transpose();
    c.y_sum += y[i];
  }

  Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(x);
  if (qr.rank() < static_cast<Eigen::Index>(p)) {
    throw DataError(fmt::format(
        "fit_random_intercept: the design has rank {} but {} columns; drop collinear columns (for example a group with "
        "no observations)",
        qr.rank(), p));
  }

  const std::size_t n_clusters = clusters.size();
  const bool any_repeated = std::any_of(clusters.begin(), clusters.end(), [](const Cluster& c) { return c.rows.size() > 1; });
  if (!any_repeated) {
    throw DataError(fmt::format(
        "fit_random_intercept: each of the {} clusters has one observation, so the random intercept cannot be told "
        "apart from the residual; pass clusters with repeated observations",
        n_clusters));
  }
  Problem problem(yv, x, std::move(clusters), options.reml);
  if (!(problem.evaluate(0.0).quadratic > 0.0)) {
    throw DataError(
        "fit_random_intercept: the fixed effects fit y exactly, so the residual variance is 0 and the model is "
        "undefined; check for constant or clipped responses");
  }
  auto objective = [&](double log_ratio) { return -problem.log_likelihood(problem.evaluate(std::exp(log_ratio))); };

  // A coarse grid guards Brent's method against a local optimum; the
  // restricted likelihood of this model is usually unimodal in gamma.
  const int grid_points = 75;
  const double step = (options.max_log_ratio - options.min_log_ratio) / (grid_points - 1);
  int best = 0;
  double best_value = std::numeric_limits<double>::infinity();
  for (int i = 0; i < grid_points; ++i) {
    const double value = objective(options.min_log_ratio + step * i);
    if (value < best_value) {
      best_value = value;
      best = i;
    }
  }
  const double low = options.min_log_ratio + step * std::max(best - 1, 0);
  const double high = options.min_log_ratio + step * std::min(best + 1, grid_points - 1);
  std::uintmax_t iterations = 500;
  const auto [log_ratio, minimum] = boost::math::tools::brent_find_minima(objective, low, high, 52, iterations);

  double gamma = std::exp(log_ratio);
  const double boundary_value = -problem.log_likelihood(problem.evaluate(0.0));
  MixedModelResult result;
  if (boundary_value <= minimum || log_ratio <= options.min_log_ratio + step) {
    gamma = 0.0;
    result.on_boundary = true;
  }

  const auto state = problem.evaluate(gamma);
  result.method = options.reml ? "REML" : "ML";
  result.n_observations = n;
  result.n_clusters = n_clusters;
  result.residual_variance = state.quadratic / problem.degrees_of_freedom();
  result.group_variance = gamma * result.residual_variance;
  result.log_likelihood = problem.log_likelihood(state);

  // NOTE: at gamma = 0 statsmodels warns that the optimum is on the boundary
  // and its Hessian-based errors are unreliable; here the same formula is used.
  const Eigen::MatrixXd covariance = (-problem.hessian(gamma, state)).inverse();
  const boost::math::normal standard_normal;
  for (Eigen::Index j = 0; j < problem.n_fixed(); ++j) {
    const double coefficient = state.beta[j];
    const double se = std::sqrt(covariance(j, j));
    const double z = coefficient / se;
    result.coefficients.push_back(coefficient);
    result.standard_errors.push_back(se);
    result.z_values.push_back(z);
    result.p_values.push_back(std::isfinite(z)
                                  ? 2.0 * boost::math::cdf(boost::math::complement(standard_normal, std::abs(z)))
                                  : std::numeric_limits<double>::quiet_NaN());
  }
  return result;
}

}  // namespace medfair::stats
