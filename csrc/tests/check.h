// A minimal test harness for the core's C++ unit tests (no framework dependency, so the same tests build
// with any toolchain and run under qemu). Each test program holds TEST(...) cases and links
// test_main.cpp, which runs them all (or those named on the command line) and ends with the line
// "N passed, N failed"; the exit code is non-zero when any check failed.
//
//   TEST(compute_stats_matches_numpy) { CHECK_NEAR(s.p99, 49.6, 1e-12); }
//
// A failed CHECK records file:line and the expression and continues with the next check of the same
// test; an exception escaping a test fails that test.
#pragma once
#include <cmath>
#include <cstddef>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace pymfn_test {

struct TestCase {
  const char* name;
  std::function<void()> body;
};

std::vector<TestCase>& registry();
// Records a failed check of the running test.
void fail(const char* file, int line, const std::string& message);

struct Register {
  Register(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

template <typename T>
std::string show(const T& v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

}  // namespace pymfn_test

#define PYMFN_TEST_CAT2(a, b) a##b
#define PYMFN_TEST_CAT(a, b) PYMFN_TEST_CAT2(a, b)

#define TEST(name)                                                                          \
  static void test_##name();                                                                \
  static const ::pymfn_test::Register PYMFN_TEST_CAT(register_, name){#name, &test_##name}; \
  static void test_##name()

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) ::pymfn_test::fail(__FILE__, __LINE__, std::string("CHECK(") + #cond + ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                                        \
  do {                                                                                                        \
    const auto pymfn_a_ = (a); /* copies: (a) may name a part of a temporary */                              \
    const auto pymfn_b_ = (b);                                                                                \
    if (!(pymfn_a_ == pymfn_b_))                                                                              \
      ::pymfn_test::fail(__FILE__, __LINE__,                                                                  \
                         std::string("CHECK_EQ(") + #a + ", " + #b + "): " + ::pymfn_test::show(pymfn_a_) +  \
                             " != " + ::pymfn_test::show(pymfn_b_));                                          \
  } while (0)

// |a - b| <= tol, and never true for NaN.
#define CHECK_NEAR(a, b, tol)                                                                                 \
  do {                                                                                                        \
    const double pymfn_a_ = (a), pymfn_b_ = (b);                                                              \
    if (!(std::fabs(pymfn_a_ - pymfn_b_) <= (tol)))                                                           \
      ::pymfn_test::fail(__FILE__, __LINE__,                                                                  \
                         std::string("CHECK_NEAR(") + #a + ", " + #b + ", " + #tol + "): " +                  \
                             ::pymfn_test::show(pymfn_a_) + " vs " + ::pymfn_test::show(pymfn_b_));           \
  } while (0)

// `stmt` throws `type` (or a subclass) whose what() contains `needle` ("" = any message).
#define CHECK_THROWS(stmt, type, needle)                                                                     \
  do {                                                                                                       \
    bool pymfn_thrown_ = false;                                                                              \
    try {                                                                                                    \
      stmt;                                                                                                  \
    } catch (const type& e) {                                                                                \
      pymfn_thrown_ = true;                                                                                  \
      if (std::string(e.what()).find(needle) == std::string::npos)                                           \
        ::pymfn_test::fail(__FILE__, __LINE__,                                                               \
                           std::string(#stmt) + " threw " #type " without \"" + (needle) + "\": " + e.what()); \
    }                                                                                                        \
    if (!pymfn_thrown_) ::pymfn_test::fail(__FILE__, __LINE__, std::string(#stmt) + " did not throw " #type); \
  } while (0)
