// Runs the TEST cases linked into this program: all of them, or those whose names are given as arguments.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "tests/check.h"

namespace pymfn_test {

namespace {
int g_failures_in_test = 0;
}

std::vector<TestCase>& registry() {
  static std::vector<TestCase> cases;
  return cases;
}

void fail(const char* file, int line, const std::string& message) {
  ++g_failures_in_test;
  std::printf("  %s:%d: %s\n", file, line, message.c_str());
}

}  // namespace pymfn_test

int main(int argc, char** argv) {
  using namespace pymfn_test;
  int passed = 0, failed = 0, unknown = 0;
  for (int i = 1; i < argc; ++i) {
    bool found = false;
    for (const auto& t : registry()) found = found || std::strcmp(t.name, argv[i]) == 0;
    if (!found) {
      std::fprintf(stderr, "no test named %s\n", argv[i]);
      ++unknown;
    }
  }
  if (unknown > 0) return 2;
  for (const auto& t : registry()) {
    bool selected = argc == 1;
    for (int i = 1; i < argc; ++i) selected = selected || std::strcmp(t.name, argv[i]) == 0;
    if (!selected) continue;
    g_failures_in_test = 0;
    try {
      t.body();
    } catch (const std::exception& e) {
      fail(t.name, 0, std::string("uncaught exception: ") + e.what());
    } catch (...) {
      fail(t.name, 0, "uncaught non-standard exception");
    }
    std::printf("%s %s\n", g_failures_in_test == 0 ? "PASS" : "FAIL", t.name);
    std::fflush(stdout);
    (g_failures_in_test == 0 ? passed : failed) += 1;
  }
  if (passed + failed == 0) {
    std::printf("no tests ran\n");
    return 1;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
