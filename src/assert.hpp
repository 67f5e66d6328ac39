#pragma once

// PGCM_ASSERT(cond, "I3: ..."): checks an invariant of docs/threading.md in
// debug builds (NDEBUG not defined, e.g. the Debug/ASan CI build). On
// failure it prints the invariant, the condition and file:line to stderr and
// aborts. In release builds it compiles to nothing (`cond` is not evaluated).

#include <cstdio>
#include <cstdlib>

namespace pgcm::detail {

[[noreturn]] inline void assertion_failed(const char* invariant, const char* cond, const char* file,
                                          int line) noexcept {
  std::fprintf(stderr,
               "pgcm: invariant violated: %s (docs/threading.md)\n  check: %s\n  at %s:%d\n",
               invariant, cond, file, line);
  std::fflush(stderr);
  std::abort();
}

} // namespace pgcm::detail

#ifndef NDEBUG
#define PGCM_ASSERT(cond, invariant)                                                               \
  ((cond) ? static_cast<void>(0)                                                                   \
          : ::pgcm::detail::assertion_failed(invariant, #cond, __FILE__, __LINE__))
#else
#define PGCM_ASSERT(cond, invariant) static_cast<void>(0)
#endif
