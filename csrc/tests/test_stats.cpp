// compute_stats: percentiles by numpy's default ("linear") method, population std, cv.
// Expected values are numpy's: np.percentile(x, [50, 90, 95, 99, 99.9]), x.mean(), x.std().
#include <cstddef>
#include <limits>
#include <vector>

#include "core/errors.h"
#include "core/runner.h"
#include "tests/check.h"

using pymfn::compute_stats;
using pymfn::LatencyStats;

namespace {

void check_percentiles(const LatencyStats& s, const double (&want)[5], double tol) {
  CHECK_NEAR(s.median, want[0], tol);
  CHECK_NEAR(s.p90, want[1], tol);
  CHECK_NEAR(s.p95, want[2], tol);
  CHECK_NEAR(s.p99, want[3], tol);
  CHECK_NEAR(s.p999, want[4], tol);
}

}  // namespace

TEST(five_unsorted_samples_match_numpy) {
  const LatencyStats s = compute_stats({35.0, 15.0, 50.0, 20.0, 40.0});
  CHECK_EQ(s.count, size_t{5});
  CHECK_EQ(s.min, 15.0);
  CHECK_EQ(s.max, 50.0);
  check_percentiles(s, {35.0, 46.0, 48.0, 49.6, 49.96}, 1e-12);
  CHECK_NEAR(s.mean, 32.0, 1e-12);
  CHECK_NEAR(s.std, 12.884098726725126, 1e-12);  // population std (ddof 0)
  CHECK_NEAR(s.cv, 12.884098726725126 / 32.0, 1e-12);
}

TEST(thousand_irregular_samples_match_numpy) {
  // x[i] = (i*i mod 97) + i/8, i = 0..999: many ties in the integer part, no two samples equal.
  std::vector<double> x;
  for (int i = 0; i < 1000; ++i) x.push_back(static_cast<double>(i * i % 97) + i / 8.0);
  const LatencyStats s = compute_stats(x);
  CHECK_EQ(s.count, size_t{1000});
  CHECK_EQ(s.min, 0.0);
  CHECK_EQ(s.max, 220.0);
  check_percentiles(s, {110.0, 174.16250000000002, 188.88125, 207.6275, 218.50150000000014}, 1e-9);
  CHECK_NEAR(s.mean, 110.2775, 1e-9);
  CHECK_NEAR(s.std, 47.02223868819944, 1e-9);
}

TEST(two_samples_interpolate_between_them) {
  const LatencyStats s = compute_stats({2.0, 1.0});
  check_percentiles(s, {1.5, 1.9, 1.95, 1.99, 1.999}, 1e-12);
  CHECK_NEAR(s.std, 0.5, 1e-15);
}

TEST(one_sample_and_ties) {
  const LatencyStats one = compute_stats({7.0});
  check_percentiles(one, {7.0, 7.0, 7.0, 7.0, 7.0}, 0.0);
  CHECK_EQ(one.std, 0.0);
  CHECK_EQ(one.cv, 0.0);
  const LatencyStats ties = compute_stats({3.0, 3.0, 1.0, 3.0});
  check_percentiles(ties, {3.0, 3.0, 3.0, 3.0, 3.0}, 0.0);
  CHECK_NEAR(ties.mean, 2.5, 1e-15);
  CHECK_NEAR(ties.std, 0.8660254037844386, 1e-15);
}

TEST(empty_input_gives_zero_count) {
  const LatencyStats s = compute_stats({});
  CHECK_EQ(s.count, size_t{0});
  CHECK_EQ(s.max, 0.0);
}

TEST(all_zero_samples_have_zero_cv) {
  const LatencyStats s = compute_stats({0.0, 0.0, 0.0});
  CHECK_EQ(s.mean, 0.0);
  CHECK_EQ(s.cv, 0.0);  // not NaN from 0/0
}

TEST(non_finite_samples_are_refused) {
  CHECK_THROWS(compute_stats({1.0, std::numeric_limits<double>::quiet_NaN()}), pymfn::InvalidArgument, "finite");
  CHECK_THROWS(compute_stats({std::numeric_limits<double>::infinity()}), pymfn::InvalidArgument, "finite");
}
